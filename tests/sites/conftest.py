"""Fixtures of the sites service's tests that call the importer without HTTP."""

from __future__ import annotations

import pytest

from spp_shared.kit.db import Database


@pytest.fixture
def db(sites_database: Database) -> Database:
    """The sites database, emptied, as the importer takes it."""
    return sites_database

"""Fixtures of the sites service's tests that call the importer without HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from spp_shared.kit.db import Database
from tests.support import ServiceDB


@pytest.fixture
async def db(sites_db: ServiceDB) -> AsyncIterator[Database]:
    """The sites database, emptied, as the importer takes it."""
    await sites_db.reset()
    database = Database(sites_db.url)
    yield database
    await database.dispose()

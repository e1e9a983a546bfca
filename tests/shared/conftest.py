"""Fixtures of the kit's own tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def scratch_url(fresh_database_url: Callable[[str], str]) -> str:
    """An empty database for a test's own tables. A sync fixture: creating a
    PostgreSQL database runs its own event loop."""
    return fresh_database_url("kit")

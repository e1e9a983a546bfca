"""/healthz and /readyz (kit/health.py) on an app of their own: ready on a
migrated database, 503 on one it cannot reach or that holds no schema,
alive either way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from spp_feedback.cli import MIGRATIONS
from spp_shared.kit.db import Database
from spp_shared.kit.health import router
from spp_shared.kit.migrations import upgrade

pytestmark = pytest.mark.anyio


@pytest.fixture
def database_urls(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    migrated = f"sqlite+aiosqlite:///{tmp_path / 'migrated.db'}"
    upgrade(MIGRATIONS, migrated)
    return {
        "migrated": migrated,
        "empty": f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}",
        # A SQLite "file" that is a folder cannot be opened.
        "unreachable": f"sqlite+aiosqlite:///{folder}",
    }


@asynccontextmanager
async def _client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(router)
    app.state.service_name = "test"
    app.state.db = Database(url)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://test"
        ) as client:
            yield client
    finally:
        await app.state.db.dispose()


async def test_ready_on_a_migrated_database(database_urls: dict[str, str]) -> None:
    async with _client(database_urls["migrated"]) as client:
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.json()) == (
            200,
            {"status": "ok", "service": "test", "database": "ok"},
        )


async def test_unavailable_on_a_database_it_cannot_reach_yet_alive(
    database_urls: dict[str, str],
) -> None:
    async with _client(database_urls["unreachable"]) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/json"
        assert ready.json() == {
            "status": "unavailable",
            "service": "test",
            "database": "OperationalError",
        }
        # The kind of error, never the database's address.
        assert "a-folder" not in ready.text
        alive = await client.get("/healthz")
        assert (alive.status_code, alive.json()) == (200, {"status": "ok", "service": "test"})


async def test_unavailable_on_a_database_without_its_schema(database_urls: dict[str, str]) -> None:
    # A mistyped SQLite path is a new, empty database: reachable, and useless.
    async with _client(database_urls["empty"]) as client:
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.json()) == (
            503,
            {"status": "unavailable", "service": "test", "database": "not migrated"},
        )

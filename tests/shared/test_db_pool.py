"""The kit's connection pool policy on PostgreSQL (ADR 0025): no ping per
checkout, a ping after an idle spell, no connections opened beyond the pool
under load, and a cut connection answered 503 once, then renewed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from fastapi import APIRouter
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from spp_shared.kit import db as kit_db
from spp_shared.kit.app import create_service_app
from spp_shared.kit.db import Database, ReadSessionDep
from spp_sites.settings import SitesSettings
from tests.support import serve_asgi

pytestmark = pytest.mark.anyio


@pytest.fixture
def url(fresh_database_url: Callable[[str], str]) -> str:
    found = fresh_database_url("kit_pool")
    if make_url(found).get_backend_name() != "postgresql":
        pytest.skip("the pool policy is PostgreSQL's (SQLite has no server to lose)")
    return found


async def backend_pid(db: Database) -> int:
    async with db.read_sessionmaker() as session:
        return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def terminate(url: str, pid: int) -> None:
    """Cut a backend from the server's side, as a restart or a proxy would."""
    u = make_url(url)
    conn = await asyncpg.connect(
        host=u.host, port=u.port, user=u.username, password=u.password, database=u.database
    )
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


async def test_no_ping_per_checkout_so_a_cut_connection_fails_once_then_is_renewed(
    url: str,
) -> None:
    db = Database(url, pool_size=1)
    try:
        pid = await backend_pid(db)
        await terminate(url, pid)
        # With a ping per checkout this read would have been served on a new
        # connection, at the price of a round trip on every request.
        with pytest.raises(DBAPIError) as failed:
            await backend_pid(db)
        assert failed.value.connection_invalidated
        assert await backend_pid(db) != pid
    finally:
        await db.dispose()


async def test_a_connection_back_from_an_idle_spell_is_pinged_and_replaced(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(url, pool_size=1)
    try:
        pid = await backend_pid(db)
        await terminate(url, pid)
        monkeypatch.setattr(kit_db, "IDLE_PING_AFTER", 0.0)
        assert await backend_pid(db) != pid
    finally:
        await db.dispose()


async def test_load_beyond_the_pool_waits_for_a_pooled_connection(url: str) -> None:
    db = Database(url, pool_size=3)
    opened: list[Any] = []
    event.listen(db.read_engine.sync_engine, "connect", lambda conn, _rec: opened.append(conn))

    async def read() -> None:
        async with db.read_sessionmaker() as session:
            await session.execute(text("SELECT pg_sleep(0.005)"))

    try:
        for _ in range(3):
            await asyncio.gather(*(read() for _ in range(30)))
        # Overflow connections used to be opened and closed again and again.
        assert len(opened) == 3
    finally:
        await db.dispose()


async def test_a_request_on_a_cut_connection_is_answered_503_then_served(url: str) -> None:
    router = APIRouter()

    @router.get("/v1/backend")
    async def backend(session: ReadSessionDep) -> dict[str, int]:
        return {"pid": (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()}

    app = create_service_app(
        # The sites service's settings: the suite holds its signing keys.
        SitesSettings(database_url=url, database_pool_size=1, access_log=False),
        title="pool test",
        description="pool test",
        routers=[router],
    )
    async with serve_asgi(app) as client:
        pid = (await client.get("/v1/backend")).json()["pid"]
        await terminate(url, pid)
        lost = await client.get("/v1/backend")
        assert lost.status_code == 503
        assert lost.headers["content-type"] == "application/problem+json"
        assert lost.headers["retry-after"] == "1"
        assert "connection to the database was lost" in lost.json()["detail"]
        again = await client.get("/v1/backend")
        assert again.status_code == 200
        assert again.json()["pid"] != pid

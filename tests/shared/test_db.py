"""The kit's database layer on the suite's database (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event, text

from spp_shared.kit.db import Database, ReadSession, WriteSession

pytestmark = pytest.mark.anyio


@pytest.fixture
def url(fresh_database_url: Callable[[str], str]) -> str:
    # A sync fixture: creating a PostgreSQL database runs its own event loop.
    return fresh_database_url("kit_db")


def record_statements(db: Database) -> list[str]:
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement.strip().split()[0].upper())

    for engine in (db.engine, db.read_engine):
        event.listen(engine.sync_engine, "before_cursor_execute", before)
    return seen


async def test_reads_run_without_a_transaction_and_writes_within_one(url: str) -> None:
    db = Database(url)
    try:
        async with db.sessionmaker() as session:
            await session.execute(text("CREATE TABLE t (v INTEGER)"))
            await session.commit()
        seen = record_statements(db)
        async with db.read_sessionmaker() as session:
            await session.execute(text("SELECT 1"))
        assert seen == ["SELECT"]
        seen.clear()
        async with db.sessionmaker() as session:
            await session.execute(text("INSERT INTO t VALUES (1)"))
            await session.rollback()
        async with db.read_sessionmaker() as session:
            assert (await session.execute(text("SELECT count(*) FROM t"))).scalar() == 0
    finally:
        await db.dispose()


async def test_a_released_savepoint_does_not_commit_a_failed_transaction(url: str) -> None:
    """SQLite used to commit at the RELEASE of a first savepoint (ADR 0009)."""
    db = Database(url)
    try:
        async with db.sessionmaker() as session:
            await session.execute(text("CREATE TABLE t (v INTEGER)"))
            await session.commit()
        async with db.sessionmaker() as session:
            await session.execute(text("SELECT count(*) FROM t"))
            async with session.begin_nested():
                await session.execute(text("INSERT INTO t VALUES (1)"))
            await session.rollback()
        async with db.read_sessionmaker() as session:
            assert (await session.execute(text("SELECT count(*) FROM t"))).scalar() == 0
    finally:
        await db.dispose()


async def test_writes_and_reads_get_sessions_of_their_own_type(url: str) -> None:
    """The types that keep a read session out of the functions that write."""
    db = Database(url)
    try:
        async with db.sessionmaker() as write, db.read_sessionmaker() as read:
            assert isinstance(write, WriteSession)
            assert isinstance(read, ReadSession)
            assert not isinstance(read, WriteSession)
    finally:
        await db.dispose()

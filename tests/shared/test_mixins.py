"""The model mixins on the suite's database (SQLite, or PostgreSQL with
SPP_TEST_DATABASE_URL). That sites' and the gateway's tables keep their
schema with them is test_migrations' ``alembic check``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import String, inspect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from spp_shared.kit.db import Database, new_metadata
from spp_shared.kit.ids import is_ulid
from spp_shared.kit.mixins import UlidPrimaryKey, Versioned
from tests.support import database_with

pytestmark = pytest.mark.anyio


class Base(DeclarativeBase):
    metadata = new_metadata()


class Thing(UlidPrimaryKey, Versioned, Base):
    __tablename__ = "things"

    name: Mapped[str] = mapped_column(String(50))


@pytest.fixture
def url(fresh_database_url: Callable[[str], str]) -> str:
    return fresh_database_url("kit_mixins")


@pytest.fixture
async def db(url: str) -> AsyncIterator[Database]:
    async with database_with(url, Base.metadata) as database:
        yield database


def test_the_mixins_declare_the_columns_every_table_shares() -> None:
    columns = {c.name: c for c in inspect(Thing).columns}
    assert {"id", "created_at", "updated_at", "version"} <= set(columns)
    assert columns["id"].primary_key
    assert not any(columns[c].nullable for c in ("created_at", "updated_at", "version"))


async def test_a_new_row_gets_an_id_and_version_1(db: Database) -> None:
    stamp = datetime(2026, 1, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    async with db.sessionmaker() as session:
        thing = Thing(name="a", created_at=stamp, updated_at=stamp)
        session.add(thing)
        await session.commit()
    async with db.read_sessionmaker() as session:
        stored = await session.get(Thing, thing.id)
    assert stored is not None
    assert is_ulid(stored.id)
    assert stored.version == 1
    # Stored and read back in UTC on both databases (SQLite drops the zone).
    assert stored.created_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert stored.created_at.tzinfo is UTC


async def test_a_change_is_a_new_version(db: Database) -> None:
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    async with db.sessionmaker() as session:
        thing = Thing(name="a", created_at=stamp, updated_at=stamp)
        session.add(thing)
        await session.flush()
        thing.changed(stamp + timedelta(hours=1))
        thing.changed()
        await session.commit()
    async with db.read_sessionmaker() as session:
        stored = await session.get(Thing, thing.id)
    assert stored is not None
    assert stored.version == 3
    assert stored.created_at == stamp
    assert stored.updated_at > stamp + timedelta(hours=1)

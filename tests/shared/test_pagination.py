"""Keyset pages: cursors, the ``limit + 1`` cut, and the read behind a page
on the suite's database (SQLite, or PostgreSQL with SPP_TEST_DATABASE_URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import Column, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from spp_shared.kit.db import Database, UTCDateTime
from spp_shared.kit.pagination import (
    BY_ID,
    BY_TIME_AND_ID,
    InvalidCursor,
    Keyset,
    Page,
    as_number,
    as_text,
    encode_cursor,
    keyset_slice,
)
from tests.support import database_with

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Item(BaseModel):
    id: str
    at: datetime


metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
)


# --- cursors --------------------------------------------------------------------------


def test_a_cursor_gives_back_the_key_it_was_made_from() -> None:
    assert BY_ID.after(BY_ID.cursor("caf")) == "caf"
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert BY_TIME_AND_ID.after(BY_TIME_AND_ID.cursor((at, "01J"))) == (at, "01J")
    by_distance: Keyset[tuple[float, str]] = Keyset(as_number, as_text)
    assert by_distance.after(by_distance.cursor((1.5, "S1"))) == (1.5, "S1")


def test_no_cursor_is_the_first_page() -> None:
    assert BY_ID.after(None) is None
    assert BY_ID.after("") is None


def test_a_time_in_another_zone_is_read_as_utc() -> None:
    paris = datetime(2026, 1, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    cursor = encode_cursor([paris.isoformat(), "x"])
    assert BY_TIME_AND_ID.after(cursor) == (datetime(2026, 1, 1, 12, 0, tzinfo=UTC), "x")


@pytest.mark.parametrize(
    ("keyset", "key"),
    [
        (BY_ID, [1]),
        (BY_ID, ["a", "b"]),
        (BY_ID, []),
        (BY_ID, ["a\x00b"]),
        (BY_TIME_AND_ID, ["2026-01-01T00:00:00", "x"]),  # no zone: never issued
        (BY_TIME_AND_ID, ["yesterday", "x"]),
        (BY_TIME_AND_ID, ["2026-01-01T00:00:00+00:00", 7]),
        (BY_TIME_AND_ID, ["9999-12-31T23:59:59-01:00", "x"]),  # past UTC's last year
        (Keyset(as_number, as_text), [True, "x"]),
        (Keyset(as_number, as_text), ["1.5", "x"]),
    ],
)
def test_a_key_of_another_shape_is_an_invalid_cursor(keyset: Keyset[Any], key: list[Any]) -> None:
    with pytest.raises(InvalidCursor):
        keyset.after(encode_cursor(key))


@pytest.mark.parametrize("cursor", ["!!!", "bm90IGpzb24", "eyJhIjoxfQ"])
def test_what_is_not_a_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        BY_ID.after(cursor)


def test_the_extra_row_only_says_there_is_more() -> None:
    rows = ["a", "b", "c"]
    assert BY_ID.cut(rows, 3, str) == (rows, None)
    shown, cursor = BY_ID.cut(rows, 2, str)
    assert shown == ["a", "b"]
    assert BY_ID.after(cursor) == "b"


# --- on the database ------------------------------------------------------------------


@pytest.fixture
def url(fresh_database_url: Callable[[str], str]) -> str:
    return fresh_database_url("kit_pages")


@pytest.fixture
async def db(url: str) -> AsyncIterator[Database]:
    async with database_with(url, metadata) as database:
        yield database


async def fill(db: Database, rows: Sequence[tuple[str, datetime]]) -> None:
    async with db.sessionmaker() as session:
        await session.execute(items.insert(), [{"id": i, "at": at} for i, at in rows])
        await session.commit()


def newest_first(session: AsyncSession) -> Any:
    async def read(after: tuple[datetime, str] | None, n: int) -> Sequence[Any]:
        stmt = keyset_slice(select(items), (items.c.at, items.c.id), after, n, descending=True)
        return (await session.execute(stmt)).all()

    return read


async def walk(
    keyset: Keyset[Any], read: Any, limit: int, key: Any, keep: Any = None
) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await keyset.page(
            Page[Item],
            cursor=cursor,
            limit=limit,
            read=read,
            out=lambda r: Item(id=r.id, at=r.at),
            key=key,
            keep=keep,
        )
        pages.append([i.id for i in page.items])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


async def test_pages_newest_first_break_ties_by_id(db: Database) -> None:
    # Three rows share a time: the page boundary falls between them.
    await fill(
        db,
        [("A", T0), ("B", T0 + timedelta(seconds=1)), ("C", T0), ("D", T0), ("E", T0)],
    )
    async with db.read_sessionmaker() as session:
        pages = await walk(BY_TIME_AND_ID, newest_first(session), 2, lambda r: (r.at, r.id))
    assert pages == [["B", "E"], ["D", "C"], ["A"]]


async def test_a_page_that_ends_the_listing_has_no_cursor(db: Database) -> None:
    await fill(db, [("A", T0), ("B", T0)])
    async with db.read_sessionmaker() as session:
        assert await walk(BY_TIME_AND_ID, newest_first(session), 2, lambda r: (r.at, r.id)) == [
            ["B", "A"]
        ]


async def test_ascending_by_id(db: Database) -> None:
    await fill(db, [(i, T0) for i in "QWERTY"])

    async with db.read_sessionmaker() as session:

        async def read(after: str | None, n: int) -> Sequence[Any]:
            return (
                await session.execute(keyset_slice(select(items), (items.c.id,), after, n))
            ).all()

        assert await walk(BY_ID, read, 4, lambda r: r.id) == [["E", "Q", "R", "T"], ["W", "Y"]]


async def test_rows_the_caller_may_not_see_are_skipped_and_pages_stay_full(db: Database) -> None:
    # Every other row hidden: the first batch of limit + 1 rows cannot fill a page.
    await fill(db, [(f"R{i:02}", T0 + timedelta(seconds=i)) for i in range(10)])
    calls: list[int] = []

    async with db.read_sessionmaker() as session:
        read = newest_first(session)

        async def counted(after: tuple[datetime, str] | None, n: int) -> Sequence[Any]:
            calls.append(n)
            return await read(after, n)

        pages = await walk(
            BY_TIME_AND_ID,
            counted,
            2,
            lambda r: (r.at, r.id),
            keep=lambda r: int(r.id[1:]) % 2 == 0,
        )
    assert pages == [["R08", "R06"], ["R04", "R02"], ["R00"]]
    assert set(calls) == {3}

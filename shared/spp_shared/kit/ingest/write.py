"""Bulk writes: many rows into one table, inside the caller's transaction.

One function, :func:`insert_rows`, with a fast path per database: COPY on
the session's own asyncpg connection for PostgreSQL (the fastest way in past
a table's unique indexes, PERFORMANCE.md), the driver's executemany for
SQLite (SQLAlchemy's per-row parameter handling cost more than SQLite's
write). Either way each value goes through its column type's bind processor,
obtained through SQLAlchemy's public ``dialect_impl(...).bind_processor(...)``,
so JSON columns, type decorators (UTC datetimes) and the engine's JSON
serializer apply exactly as they would through ``insert(table)``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any, Final

import asyncpg
from sqlalchemy import Table, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError

from spp_shared.kit.db import WriteSession, is_postgresql

Processor = Callable[[Any], Any] | None

_ANALYZE: Final = "ANALYZE (SKIP_LOCKED) {table}"
_OPEN: Final = text("SELECT 1")


@cache
def _processors(table: Table, columns: tuple[str, ...], dialect: Dialect) -> tuple[Processor, ...]:
    # Cached per table, column list and dialect: a bulk write asks once a batch.
    return tuple(table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns)


@cache
def _insert_sql(table: Table, columns: tuple[str, ...]) -> str:
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)})"
    )


def _records(
    rows: Sequence[Mapping[str, Any]], columns: tuple[str, ...], processors: Sequence[Processor]
) -> list[tuple[Any, ...]]:
    pairs = tuple(zip(columns, processors, strict=True))
    return [tuple(p(r[c]) if p else r[c] for c, p in pairs) for r in rows]


async def insert_rows(
    session: WriteSession,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Insert ``rows`` (each a mapping holding every one of ``columns``) into ``table``.

    Runs on the session's connection, in its transaction. A unique or foreign
    key violation raises SQLAlchemy's :class:`IntegrityError` on both databases.
    """
    if not rows:
        return
    cols = tuple(columns)
    conn = await session.connection()
    records = _records(rows, cols, _processors(table, cols, conn.dialect))
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    if is_postgresql(session):
        if not driver.is_in_transaction():
            # SQLAlchemy's asyncpg adapter sends BEGIN with the first statement
            # it runs, and a COPY on the raw connection is not one: as the
            # session's first write it would commit on its own, out of reach
            # of a rollback. One statement through the session opens it.
            await conn.execute(_OPEN)
        try:
            await driver.copy_records_to_table(table.name, records=records, columns=list(cols))
        except asyncpg.IntegrityConstraintViolationError as exc:
            # The raw driver's error, as SQLAlchemy would have raised it.
            raise IntegrityError(f"COPY {table.name}", None, exc) from exc
    else:
        try:
            await driver.executemany(_insert_sql(table, cols), records)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(f"INSERT {table.name}", None, exc) from exc


async def analyze(session: WriteSession, table: Table) -> None:
    """PostgreSQL: statistics of ``table`` as this transaction sees it; SQLite: nothing.

    Rows an import adds have no statistics autovacuum could take (it cannot
    see them yet); without any, look-ups against a table the import grows
    are planned as if it were empty, hundreds to thousands of times slower
    (ADR 0020). ANALYZE sees the transaction's own rows and replans the
    statements that read the table. SKIP_LOCKED: the lock ANALYZE takes is
    held until the transaction ends, so a concurrent import that analyzed
    first is not waited for.
    """
    if is_postgresql(session):
        await session.execute(text(_ANALYZE.format(table=table.name)))

"""All SQL of the importer: batch look-up, bulk insert, bulk update.

Portable SQLAlchemy Core for both databases; on PostgreSQL new sites go in
with COPY on the session's own connection (same transaction), which is the
fastest way in past the table's unique indexes (docs: PERFORMANCE.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, cast

import asyncpg
import orjson
from sqlalchemy import Table, bindparam, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from spp_sites import repository as repo
from spp_sites.importer.networks import PlannedNetwork
from spp_sites.models import Network, Site
from spp_sites.values import CONTENT_FIELDS

SITES = cast(Table, Site.__table__)
NETWORKS = cast(Table, Network.__table__)

# The status columns outside the content digest: an import that changes the
# status starts a new period, without the reason or reopening date of the old one.
STATUS_DETAIL: Final = ("status_since", "status_reason", "reopens_on")
EXISTING_COLUMNS: Final = (
    "id",
    "version",
    "content_hash",
    "parent_id",
    *STATUS_DETAIL,
    *CONTENT_FIELDS,
)
INSERT_COLUMNS: Final = (
    "id",
    *CONTENT_FIELDS,
    "search_text",
    "content_hash",
    "parent_id",
    "status_since",
    "created_at",
    "updated_at",
    "version",
)
UPDATE_COLUMNS: Final = (
    *CONTENT_FIELDS,
    "search_text",
    "content_hash",
    "parent_id",
    *STATUS_DETAIL,
    "updated_at",
)
_JSON_COLUMNS: Final = frozenset({"opening_hours", "accessibility"})

# Only if the row is still at the version the update was planned on: a site
# changed meanwhile (an agent's PATCH) is not overwritten (see update_sites).
_UPDATE = (
    update(SITES)
    .where(SITES.c.id == bindparam("u_id"), SITES.c.version == bindparam("u_version"))
    .values({c: bindparam(f"u_{c}") for c in UPDATE_COLUMNS} | {"version": SITES.c.version + 1})
)


class StaleRows(Exception):
    """Some sites changed between the import's look-up and its update."""


def is_postgresql(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


async def existing_sites(
    session: AsyncSession, keys: Sequence[tuple[str, str]], sp_codes: Sequence[str]
) -> list[dict[str, Any]]:
    """Sites matching any ``(network, external code)`` pair or SP+ code."""
    rows = await repo.sites_by_keys(session, EXISTING_COLUMNS, pairs=keys, codes=sp_codes)
    return [dict(r) for r in rows]


# SKIP_LOCKED: the lock ANALYZE takes is held until the import ends, so a
# concurrent import that analyzed first is not waited for.
_ANALYZE_SITES: Final = text(f"ANALYZE (SKIP_LOCKED) {SITES.name}")


async def analyze_sites(session: AsyncSession) -> None:
    """PostgreSQL: statistics of ``sites`` as this transaction sees it.

    Rows the import adds have no statistics autovacuum could take (it cannot
    see them yet); without any, the batch look-up was planned as if every
    network were rare: probes of the network index, filtered row by row,
    hundreds to thousands of times slower (ADR 0020). ANALYZE sees the
    transaction's own rows and replans the statements that read the table.
    SQLite: nothing.
    """
    if is_postgresql(session):
        await session.execute(_ANALYZE_SITES)


async def insert_networks(
    session: AsyncSession, planned: Sequence[PlannedNetwork], stamp: datetime
) -> None:
    if not planned:
        return
    await session.execute(
        insert(NETWORKS),
        [
            {
                "code": p.code,
                "name": p.name,
                "ministry": None,
                "kind": "other",
                "website": None,
                "results_level": "site",
                "aliases": [p.name],
                "created_at": stamp,
                "updated_at": stamp,
                "version": 1,
            }
            for p in planned
        ],
    )


async def insert_sites(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    if is_postgresql(session):
        await _copy_sites(session, rows)
    else:
        await _executemany_sites(session, rows)


_INSERT_SQL: Final = (
    f"INSERT INTO {SITES.name} ({', '.join(INSERT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in INSERT_COLUMNS)})"
)


async def _executemany_sites(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """SQLite: the driver's executemany with SQLAlchemy's own per-type converters.

    Going through ``session.execute(insert(...), rows)`` spent more time in
    SQLAlchemy's per-row parameter handling than SQLite spent writing.
    """
    conn = await session.connection()
    processors = [SITES.c[c].type._cached_bind_processor(conn.dialect) for c in INSERT_COLUMNS]
    pairs = list(zip(INSERT_COLUMNS, processors, strict=True))
    records = [tuple(p(r[c]) if p else r[c] for c, p in pairs) for r in rows]
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    await driver.executemany(_INSERT_SQL, records)


async def _copy_sites(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """COPY on the session's connection: inside the import's transaction."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    records = [
        tuple(
            orjson.dumps(r[c]).decode() if c in _JSON_COLUMNS and r[c] is not None else r[c]
            for c in INSERT_COLUMNS
        )
        for r in rows
    ]
    try:
        await driver.copy_records_to_table(
            SITES.name, records=records, columns=list(INSERT_COLUMNS)
        )
    except asyncpg.IntegrityConstraintViolationError as exc:
        # The raw driver's error, as SQLAlchemy would have raised it.
        raise IntegrityError(f"COPY {SITES.name}", None, exc) from exc


async def update_sites(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """One executemany UPDATE; ``version`` is bumped in SQL."""
    if not rows:
        return
    params = [
        {"u_id": r["id"], "u_version": r["version"]} | {f"u_{c}": r[c] for c in UPDATE_COLUMNS}
        for r in rows
    ]
    await session.execute(_UPDATE, params, execution_options={"synchronize_session": False})
    # executemany's row count is not reliable across drivers: count what took.
    stamp = rows[0]["updated_at"]
    took = await session.scalar(
        select(func.count())
        .select_from(SITES)
        .where(SITES.c.id.in_([r["id"] for r in rows]), SITES.c.updated_at == stamp)
    )
    if took != len(rows):
        raise StaleRows(f"{len(rows) - (took or 0)} sites changed during the import")

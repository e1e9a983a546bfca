"""All SQL of the importer: batch look-up, bulk insert, bulk update.

Portable SQLAlchemy Core for both databases; new sites go in through the
kit's one bulk insert (COPY on PostgreSQL, executemany on SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from spp_shared.kit.db import WriteSession
from spp_shared.kit.ingest import analyze, insert_rows
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

# Only if the row is still at the version the update was planned on: a site
# changed meanwhile (an agent's PATCH) is not overwritten (see update_sites).
_UPDATE = (
    update(SITES)
    .where(SITES.c.id == bindparam("u_id"), SITES.c.version == bindparam("u_version"))
    .values({c: bindparam(f"u_{c}") for c in UPDATE_COLUMNS} | {"version": SITES.c.version + 1})
)


class StaleRows(Exception):
    """Some sites changed between the import's look-up and its update."""


async def existing_sites(
    session: AsyncSession, keys: Sequence[tuple[str, str]], sp_codes: Sequence[str]
) -> list[dict[str, Any]]:
    """Sites matching any ``(network, external code)`` pair or SP+ code."""
    rows = await repo.sites_by_keys(session, EXISTING_COLUMNS, pairs=keys, codes=sp_codes)
    return [dict(r) for r in rows]


async def analyze_sites(session: WriteSession) -> None:
    """Statistics of ``sites`` once an import has grown it (ADR 0020)."""
    await analyze(session, SITES)


async def insert_networks(
    session: WriteSession, planned: Sequence[PlannedNetwork], stamp: datetime
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


async def insert_sites(session: WriteSession, rows: Sequence[dict[str, Any]]) -> None:
    await insert_rows(session, SITES, INSERT_COLUMNS, rows)


async def update_sites(session: WriteSession, rows: Sequence[dict[str, Any]]) -> None:
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

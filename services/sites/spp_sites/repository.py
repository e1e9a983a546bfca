"""All SQL of the sites service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Select, String, and_, bindparam, exists, func, or_, select, union_all, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from spp_shared.kit.db import WriteSession, is_postgresql
from spp_shared.kit.pagination import keyset_slice
from spp_sites.models import Network, Site
from spp_sites.near import MAX_NEAR_CANDIDATES
from spp_sites.tree import PROGRAMME_NETWORK


@dataclass(frozen=True)
class SiteFilters:
    network: str | None = None
    departement: str | None = None
    region: str | None = None
    commune: str | None = None
    status: str | None = None
    kind: str | None = None
    siret: str | None = None
    words: tuple[str, ...] = ()
    bbox: tuple[float, float, float, float] | None = None  # min_lat, max_lat, min_lon, max_lon


async def get_network(
    session: AsyncSession, code: str, *, for_update: bool = False
) -> Network | None:
    return await session.get(Network, code, with_for_update=for_update or None)


async def list_networks(
    session: AsyncSession, *, after: str | None, limit: int, kind: str | None = None
) -> Sequence[Network]:
    stmt = keyset_slice(select(Network), (Network.code,), after, limit)
    if kind:
        stmt = stmt.where(Network.kind == kind)
    return (await session.scalars(stmt)).all()


async def all_networks(session: AsyncSession) -> Sequence[Network]:
    return (await session.scalars(select(Network))).all()


# ``for_update``: writers lock the row they read (PostgreSQL), so the If-Match
# check and the write are one step for concurrent requests. SQLite needs no
# row lock: a write transaction holds the database's write lock from BEGIN.


async def get_site(session: AsyncSession, site_id: str, *, for_update: bool = False) -> Site | None:
    return await session.get(Site, site_id, with_for_update=for_update or None)


def _locked(stmt: Select[Site], for_update: bool) -> Select[Site]:
    return stmt.with_for_update() if for_update else stmt


async def get_site_by_sp_code(
    session: AsyncSession, sp_code: str, *, for_update: bool = False
) -> Site | None:
    return await session.scalar(_locked(select(Site).where(Site.sp_code == sp_code), for_update))


async def get_site_by_ref(
    session: AsyncSession, network: str, external_code: str, *, for_update: bool = False
) -> Site | None:
    stmt = select(Site).where(Site.network_code == network, Site.external_code == external_code)
    return await session.scalar(_locked(stmt, for_update))


def _filtered(filters: SiteFilters) -> Select[Site]:
    stmt = select(Site)
    conds: list[Any] = []
    if filters.network:
        conds.append(Site.network_code == filters.network)
    if filters.departement:
        conds.append(Site.departement_code == filters.departement)
    if filters.region:
        conds.append(Site.region_code == filters.region)
    if filters.commune:
        conds.append(Site.commune_code == filters.commune)
    if filters.status:
        conds.append(Site.status == filters.status)
    if filters.kind:
        conds.append(Site.kind == filters.kind)
    if filters.siret:
        conds.append(Site.siret == filters.siret)
    for word in filters.words:
        conds.append(Site.search_text.contains(word, autoescape=True))
    if filters.bbox:
        min_lat, max_lat, min_lon, max_lon = filters.bbox
        conds.append(Site.latitude.between(min_lat, max_lat))
        conds.append(Site.longitude.between(min_lon, max_lon))
    return stmt.where(and_(*conds)) if conds else stmt


async def list_sites(
    session: AsyncSession, filters: SiteFilters, *, after: str | None, limit: int
) -> Sequence[Site]:
    stmt = keyset_slice(_filtered(filters), (Site.id,), after, limit)
    return (await session.scalars(stmt)).all()


async def points_in_bbox(
    session: AsyncSession, filters: SiteFilters, *, limit: int = MAX_NEAR_CANDIDATES
) -> Sequence[tuple[str, float, float]]:
    """(id, latitude, longitude) of the located sites matching ``filters``: light
    rows, so ranking the candidates by distance stays cheap.

    With a box, at most ``limit`` rows, nearest its centre first: the box's
    half-sides are the radius in degrees of latitude and of longitude, so
    the offsets measured in half-sides order the sites as the distance does
    (equirectangular, well under 1% off at 50 km). The database keeps the
    top ``limit``; the exact distance is computed on those only.
    """
    stmt = _filtered(filters).with_only_columns(Site.id, Site.latitude, Site.longitude)
    located = stmt.where(Site.latitude.is_not(None), Site.longitude.is_not(None))
    if filters.bbox:
        min_lat, max_lat, min_lon, max_lon = filters.bbox
        dy = (Site.latitude - (min_lat + max_lat) / 2) / ((max_lat - min_lat) / 2)
        dx = (Site.longitude - (min_lon + max_lon) / 2) / ((max_lon - min_lon) / 2)
        located = located.order_by(dy * dy + dx * dx, Site.id).limit(limit)
    rows = await session.execute(located)
    return [(i, lat, lon) for i, lat, lon in rows if lat is not None and lon is not None]


async def sites_by_ids(session: AsyncSession, ids: Sequence[str]) -> dict[str, Site]:
    if not ids:
        return {}
    rows = await session.scalars(select(Site).where(Site.id.in_(ids)))
    return {s.id: s for s in rows}


# --- many keys in one statement -----------------------------------------------
#
# Long lists of keys travel as ONE parameter (a PostgreSQL array, a JSON text
# for SQLite) joined as a table, so the statement is compiled once and each
# key is an index probe: a row-value IN list of thousands of bound values
# costs more to compile than to run, and PostgreSQL evaluates it per row.


def _values_source(name: str, pg: bool) -> Any:
    if pg:
        values = bindparam(name, type_=ARRAY(String))
        return func.unnest(values).table_valued("value").render_derived(name=name)
    return func.json_each(bindparam(name)).table_valued("value").alias(name)


def _pairs_source(name: str, pg: bool) -> tuple[Any, Any, Any]:
    """A (network, external code) pairs table and its two columns."""
    if pg:
        nets = bindparam(f"{name}_net", type_=ARRAY(String))
        exts = bindparam(f"{name}_ext", type_=ARRAY(String))
        source = func.unnest(nets, exts).table_valued("net", "ext").render_derived(name=name)
        return source, source.c.net, source.c.ext
    # SQLite has no column-alias list: json_each's own "value" column is used.
    source = func.json_each(bindparam(name)).table_valued("value").alias(name)
    return (
        source,
        func.json_extract(source.c.value, "$[0]"),
        func.json_extract(source.c.value, "$[1]"),
    )


def _bind_values(name: str, values: Sequence[str], pg: bool) -> dict[str, Any]:
    return {name: list(values) if pg else orjson.dumps(list(values)).decode()}


def _bind_pairs(name: str, pairs: Sequence[tuple[str, str]], pg: bool) -> dict[str, Any]:
    if pg:
        return {f"{name}_net": [p[0] for p in pairs], f"{name}_ext": [p[1] for p in pairs]}
    return {name: orjson.dumps([list(p) for p in pairs]).decode()}


@lru_cache(maxsize=16)
def _keyed_select(columns: tuple[str, ...], pg: bool, by_pairs: bool, by: tuple[str, ...]) -> Any:
    """SELECT ``columns`` of the sites matching the pairs and/or ``by`` columns' values."""
    cols = [Site.__table__.c[c] for c in columns]
    parts = []
    if by_pairs:
        source, net, ext = _pairs_source("pairs", pg)
        parts.append(
            select(*cols).join_from(
                Site.__table__,
                source,
                and_(Site.__table__.c.network_code == net, Site.__table__.c.external_code == ext),
            )
        )
    for column in by:
        values = select(_values_source("codes", pg).c.value).scalar_subquery()
        parts.append(select(*cols).where(Site.__table__.c[column].in_(values)))
    # UNION ALL: UNION would compare the JSON columns, which PostgreSQL cannot.
    return union_all(*parts) if len(parts) > 1 else parts[0]


async def sites_by_keys(
    session: AsyncSession,
    columns: Sequence[str],
    *,
    pairs: Sequence[tuple[str, str]] = (),
    codes: Sequence[str] = (),
    code_columns: Sequence[str] = ("sp_code",),
) -> list[Any]:
    """Rows (``columns``, which must include ``id``) of the sites with any of the
    (network, external code) ``pairs``, or whose ``code_columns`` hold any of
    ``codes``: one statement, each site once."""
    by = tuple(code_columns) if codes else ()
    if not pairs and not by:
        return []
    pg = is_postgresql(session)
    params: dict[str, Any] = {}
    if pairs:
        params |= _bind_pairs("pairs", pairs, pg)
    if by:
        params |= _bind_values("codes", codes, pg)
    if "id" not in columns:
        raise ValueError("sites_by_keys needs the id column to drop duplicates")
    stmt = _keyed_select(tuple(columns), pg, bool(pairs), by)
    unique = {row["id"]: row for row in (await session.execute(stmt, params)).mappings()}
    return list(unique.values())


async def lookup_sites(
    session: AsyncSession, ids: Sequence[str], refs: Sequence[tuple[str, str]]
) -> Sequence[Site]:
    """Sites by id or SP+ code, and by (network, external code): one query."""
    columns = [c.name for c in Site.__table__.columns]
    rows = await sites_by_keys(
        session, columns, pairs=refs, codes=ids, code_columns=("id", "sp_code")
    )
    return [Site(**row) for row in rows]


async def count_sites(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Site)) or 0)


def _may_parent(parent: Any) -> Any:
    """SQL of :func:`spp_sites.tree.may_parent`: same network, or the programme's."""
    return or_(
        parent.c.network_code == Site.network_code, parent.c.network_code == PROGRAMME_NETWORK
    )


async def link_parents(session: WriteSession) -> None:
    """Resolve parent SP+ codes to ids where not resolved yet.

    Parents may arrive after their children (in a file, or across imports),
    so every write that can add a parent or a child ends with this. Only rows
    whose link is missing are touched: writers set ``parent_id`` to NULL when
    a site's parent code changes (and :func:`unlink_children` when a parent's
    own code does). A code held by a site of another network is never linked
    (ADR 0016): the child waits, as for a code nobody holds.
    """
    parent = Site.__table__.alias("parent")
    await session.execute(
        update(Site)
        .where(Site.parent_sp_code.is_not(None), Site.parent_id.is_(None))
        .values(
            parent_id=select(parent.c.id)
            .where(parent.c.sp_code == Site.parent_sp_code, _may_parent(parent))
            .scalar_subquery()
        )
        .execution_options(synchronize_session=False)
    )


async def unlink_foreign_children(session: WriteSession, parent_ids: Sequence[str]) -> None:
    """Unlink the children of ``parent_ids`` (sites that moved) now in another network."""
    if not parent_ids:
        return
    parent = Site.__table__.alias("parent")
    await session.execute(
        update(Site)
        .where(
            Site.parent_id.in_(parent_ids),
            ~exists().where(parent.c.id == Site.parent_id, _may_parent(parent)),
        )
        .values(parent_id=None)
        .execution_options(synchronize_session=False)
    )


async def ancestry(
    session: AsyncSession, codes: Sequence[str]
) -> list[tuple[str, str, str | None]]:
    """``(sp_code, network_code, parent_sp_code)`` of the sites holding ``codes``
    and of all their ancestors by parent code: one recursive query."""
    if not codes:
        return []
    pg = is_postgresql(session)
    sites = Site.__table__
    seeds = select(_values_source("codes", pg).c.value).scalar_subquery()
    tree = (
        select(sites.c.sp_code, sites.c.network_code, sites.c.parent_sp_code)
        .where(sites.c.sp_code.in_(seeds))
        .cte("ancestry", recursive=True)
    )
    up = sites.alias("up")
    # UNION, not UNION ALL: a row met twice ends the walk (no endless loop).
    tree = tree.union(
        select(up.c.sp_code, up.c.network_code, up.c.parent_sp_code).join(
            tree, up.c.sp_code == tree.c.parent_sp_code
        )
    )
    rows = await session.execute(select(tree), _bind_values("codes", codes, pg))
    return [(code, network, parent) for code, network, parent in rows]


async def unlink_children(session: WriteSession, parent_id: str) -> None:
    await session.execute(
        update(Site)
        .where(Site.parent_id == parent_id)
        .values(parent_id=None)
        .execution_options(synchronize_session=False)
    )


# --- the open-data export -----------------------------------------------------

# The export's columns, labelled as the contract's fields (SiteExportRow).
_EXPORT_COLUMNS: tuple[Any, ...] = (
    Site.id.label("id"),
    Site.network_code.label("network"),
    *(
        getattr(Site, name).label(name)
        for name in (
            "external_code", "sp_code", "parent_sp_code", "name", "kind", "level", "siret",
            "address_line", "address_complement", "postcode", "commune_code", "commune_name",
            "departement_code", "region_code", "country", "latitude", "longitude", "phone",
            "email", "website", "appointment_url", "opening_hours", "accessibility", "status",
            "status_since", "reopens_on", "status_reason", "sp_member_since", "updated_at",
        )
    ),
)  # fmt: skip


def _exported(filters: SiteFilters, since: datetime | None) -> Select[Site]:
    stmt = _filtered(filters)
    return stmt if since is None else stmt.where(Site.updated_at >= since)


def export_query(filters: SiteFilters, since: datetime | None) -> Select[Any]:
    """The export's rows (not run here: the kit streams it), in id order."""
    return _exported(filters, since).with_only_columns(*_EXPORT_COLUMNS).order_by(Site.id)


async def export_state(
    session: AsyncSession, filters: SiteFilters, since: datetime | None
) -> tuple[int, datetime | None]:
    """How many rows the export has and their latest change: its version."""
    stmt = _exported(filters, since).with_only_columns(func.count(), func.max(Site.updated_at))
    count, latest = (await session.execute(stmt)).one()
    return int(count), latest

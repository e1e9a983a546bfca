"""All SQL of the sites service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from spp_sites.models import Network, Site


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


async def get_network(session: AsyncSession, code: str) -> Network | None:
    return await session.get(Network, code)


async def list_networks(
    session: AsyncSession, *, after: str | None, limit: int, kind: str | None = None
) -> Sequence[Network]:
    stmt = select(Network).order_by(Network.code).limit(limit)
    if after is not None:
        stmt = stmt.where(Network.code > after)
    if kind:
        stmt = stmt.where(Network.kind == kind)
    return (await session.scalars(stmt)).all()


async def all_networks(session: AsyncSession) -> Sequence[Network]:
    return (await session.scalars(select(Network))).all()


async def get_site(session: AsyncSession, site_id: str) -> Site | None:
    return await session.get(Site, site_id)


async def get_site_by_sp_code(session: AsyncSession, sp_code: str) -> Site | None:
    return await session.scalar(select(Site).where(Site.sp_code == sp_code))


async def get_site_by_ref(session: AsyncSession, network: str, external_code: str) -> Site | None:
    return await session.scalar(
        select(Site).where(Site.network_code == network, Site.external_code == external_code)
    )


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
    stmt = _filtered(filters).order_by(Site.id).limit(limit)
    if after is not None:
        stmt = stmt.where(Site.id > after)
    return (await session.scalars(stmt)).all()


async def sites_in_bbox(session: AsyncSession, filters: SiteFilters) -> Sequence[Site]:
    return (await session.scalars(_filtered(filters))).all()


async def lookup_sites(
    session: AsyncSession, ids: Sequence[str], refs: Sequence[tuple[str, str]]
) -> Sequence[Site]:
    """One query for ids, SP+ codes and (network, external code) pairs."""
    conds: list[Any] = []
    if ids:
        conds.append(Site.id.in_(ids))
        conds.append(Site.sp_code.in_(ids))
    if refs:
        conds.append(tuple_(Site.network_code, Site.external_code).in_(refs))
    if not conds:
        return []
    return (await session.scalars(select(Site).where(or_(*conds)))).all()


async def count_sites(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Site)) or 0)


async def link_parents(session: AsyncSession) -> None:
    """Resolve parent SP+ codes to ids (parents may arrive after children)."""
    parent = Site.__table__.alias("parent")
    await session.execute(
        update(Site)
        .where(Site.parent_sp_code.is_not(None))
        .values(
            parent_id=select(parent.c.id)
            .where(parent.c.sp_code == Site.parent_sp_code)
            .scalar_subquery()
        )
        .execution_options(synchronize_session=False)
    )

"""Use cases of the site registry. Raises domain errors; never imports FastAPI.

The answers' shapes are in ``serialise``, the address rules in ``geo``, the
distance ranking in ``near``: here is only what a use case decides.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from spp_shared.contracts.sites import (
    LookupRequest,
    LookupResponse,
    NetworkCreate,
    NetworkOut,
    NetworkPatch,
    SiteClose,
    SiteCreate,
    SiteExportRow,
    SiteOut,
    SitePatch,
    SiteRef,
    SiteStatus,
)
from spp_shared.kit.db import WriteSession
from spp_shared.kit.errors import ValidationProblem
from spp_shared.kit.etags import check_if_match
from spp_shared.kit.export import (
    ExportFormat,
    ExportPlan,
    Resource,
    datapackage,
    export_etag,
    table_fields,
)
from spp_shared.kit.ids import is_ulid, new_ulid
from spp_shared.kit.pagination import BY_ID, Page
from spp_shared.kit.permissions import Access
from spp_sites import repository as repo
from spp_sites.errors import (
    DuplicateNetwork,
    DuplicateSite,
    NetworkNotFound,
    SiteNotFound,
    SiteStatusConflict,
    UnknownNetwork,
)
from spp_sites.geo import apply_geography
from spp_sites.models import Network, Site
from spp_sites.near import BY_DISTANCE, bbox, rank
from spp_sites.permissions import ensure_settable
from spp_sites.serialise import network_etag, network_out, site_etag, site_out, summary
from spp_sites.text import fold
from spp_sites.tree import InvalidParent, Node, parent_problem
from spp_sites.values import CONTENT_FIELDS, finish, values_from_create, values_from_patch


def now() -> datetime:
    return datetime.now(UTC)


# --- networks -----------------------------------------------------------------


async def list_networks(
    session: AsyncSession, *, cursor: str | None, limit: int, kind: str | None
) -> Page[NetworkOut]:
    return await BY_ID.page(
        Page[NetworkOut],
        cursor=cursor,
        limit=limit,
        read=lambda after, n: repo.list_networks(session, after=after, limit=n, kind=kind),
        out=network_out,
        key=lambda n: n.code,
    )


async def get_network(session: AsyncSession, code: str, *, for_update: bool = False) -> Network:
    network = await repo.get_network(session, code, for_update=for_update)
    if network is None:
        raise NetworkNotFound(f"No network has the code '{code}'.")
    return network


async def create_network(session: WriteSession, data: NetworkCreate) -> Network:
    if await repo.get_network(session, data.code) is not None:
        raise DuplicateNetwork(f"The network '{data.code}' already exists.")
    stamp = now()
    network = Network(**data.model_dump(mode="json"), created_at=stamp, updated_at=stamp, version=1)
    session.add(network)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent create won the race
        raise DuplicateNetwork(f"The network '{data.code}' already exists.") from exc
    return network


async def patch_network(
    session: WriteSession, code: str, patch: NetworkPatch, if_match: str | None
) -> Network:
    network = await get_network(session, code, for_update=True)
    check_if_match(if_match, network_etag(network))
    changes = patch.model_dump(mode="json", exclude_unset=True)
    if "name" in changes and changes["name"] is None:
        raise ValidationProblem("name cannot be null", errors=[{"field": "name", "reason": "null"}])
    for key, value in changes.items():
        setattr(network, key, value)
    if changes:
        network.changed()
    await session.flush()
    return network


# --- sites --------------------------------------------------------------------


async def resolve_site(session: AsyncSession, ref: str, *, for_update: bool = False) -> Site:
    """A site by our id, its SP+ structure code, or ``network:external_code``."""
    site: Site | None = None
    if is_ulid(ref):
        site = await repo.get_site(session, ref, for_update=for_update)
    if site is None and ":" in ref:
        network, _, external = ref.partition(":")
        site = await repo.get_site_by_ref(session, network, external, for_update=for_update)
    if site is None:
        site = await repo.get_site_by_sp_code(session, ref, for_update=for_update)
    if site is None:
        raise SiteNotFound(f"No site is known as '{ref}'.")
    return site


async def _ensure_network(session: AsyncSession, code: str) -> None:
    if await repo.get_network(session, code) is None:
        raise UnknownNetwork(
            f"The network '{code}' does not exist.",
            errors=[{"field": "network", "reason": f"unknown network '{code}'"}],
        )


async def _ensure_unique(
    session: AsyncSession, network: str, external_code: str, sp_code: str | None, own_id: str | None
) -> None:
    other = await repo.get_site_by_ref(session, network, external_code)
    if other is not None and other.id != own_id:
        raise DuplicateSite(
            f"The network '{network}' already has a site with the code '{external_code}'.",
            existing_id=other.id,
        )
    if sp_code:
        other = await repo.get_site_by_sp_code(session, sp_code)
        if other is not None and other.id != own_id:
            raise DuplicateSite(
                f"The SP+ code '{sp_code}' belongs to another site.", existing_id=other.id
            )


def _ensure_reaches(access: Access, site: Site) -> None:
    access.ensure(
        network=site.network_code,
        site_keys=(site.id, site.sp_code),
        what=f"the site {site.id} (network '{site.network_code}')",
    )


async def create_site(session: WriteSession, access: Access, data: SiteCreate) -> Site:
    access.ensure(network=data.network, what=f"the network '{data.network}'")
    ensure_settable(access, (f for f in data.model_fields_set if getattr(data, f) is not None))
    await _ensure_network(session, data.network)
    await _ensure_unique(session, data.network, data.external_code, data.sp_code, None)
    values = values_from_create(data)
    apply_geography(values, strict=True)
    await _ensure_tree(session, values, old_code=None, field="parent_sp_code")
    stamp = now()
    site = Site(
        id=new_ulid(),
        **finish(values),
        created_at=stamp,
        updated_at=stamp,
        version=1,
    )
    session.add(site)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent create won the race
        raise DuplicateSite("A site with this code was created concurrently.") from exc
    await _relink(session, site)
    return site


async def _relink(session: WriteSession, site: Site) -> None:
    """Link the site to its parent and its waiting children, then reload it."""
    await repo.link_parents(session)
    await session.refresh(site)


async def _ensure_tree(
    session: AsyncSession, values: dict[str, Any], *, old_code: str | None, field: str
) -> None:
    """Refuse (422 naming ``field``) a site whose parent would break the tree."""
    code, parent = values["sp_code"], values["parent_sp_code"]
    if parent is None:
        return
    known = {c: Node(n, p) for c, n, p in await repo.ancestry(session, [parent])}
    if old_code is not None and old_code != code:
        known.pop(old_code, None)  # the site gives up its old code
    problem = parent_problem(code, Node(values["network_code"], parent), known.get)
    if problem is not None:
        raise InvalidParent(problem, errors=[{"field": field, "reason": problem}])


def _current_values(site: Site) -> dict[str, Any]:
    return {f: getattr(site, f) for f in CONTENT_FIELDS}


def _fields_changing(patch: SitePatch, site: Site) -> set[str]:
    """The fields ``patch`` sets, but the SP+ code when it is the one the site has
    (a client sending back the site it read changes nothing there)."""
    given = set(patch.model_fields_set)
    if "sp_code" in given and patch.sp_code == site.sp_code:
        given.discard("sp_code")
    return given


async def patch_site(
    session: WriteSession,
    access: Access,
    ref: str,
    patch: SitePatch,
    if_match: str | None,
) -> Site:
    site = await resolve_site(session, ref, for_update=True)
    _ensure_reaches(access, site)
    ensure_settable(access, _fields_changing(patch, site))
    check_if_match(if_match, site_etag(site))
    changes = values_from_patch(patch)
    if not changes:
        return site
    if "network_code" in changes and changes["network_code"] != site.network_code:
        # Moving a site is managing both networks: no mass assignment across networks.
        access.ensure(
            network=changes["network_code"], what=f"the network '{changes['network_code']}'"
        )
        await _ensure_network(session, changes["network_code"])
    values = _current_values(site) | changes
    if {"commune_code", "departement_code", "region_code"} & changes.keys():
        if "departement_code" not in changes and "commune_code" in changes:
            values["departement_code"] = None
        if "region_code" not in changes and "commune_code" in changes:
            values["region_code"] = None
        apply_geography(values, strict=True)
    await _ensure_unique(
        session, values["network_code"], values["external_code"], values["sp_code"], site.id
    )
    finish(values)
    if values["content_hash"] == site.content_hash:
        return site
    tree_fields = {
        "parent_sp_code": "parent_sp_code",
        "sp_code": "sp_code",
        "network_code": "network",
    }
    changed = [f for c, f in tree_fields.items() if values[c] != getattr(site, c)]
    if changed:
        await _ensure_tree(session, values, old_code=site.sp_code, field=changed[0])
    moved = values["network_code"] != site.network_code
    if values["sp_code"] != site.sp_code:
        await repo.unlink_children(session, site.id)
    if values["parent_sp_code"] != site.parent_sp_code:
        site.parent_id = None
    for key, value in values.items():
        setattr(site, key, value)
    site.changed()
    try:
        await session.flush()
    except IntegrityError as exc:
        raise DuplicateSite("A site with this code was created concurrently.") from exc
    if moved:
        await repo.unlink_foreign_children(session, [site.id])
    await _relink(session, site)
    return site


async def close_site(
    session: WriteSession, access: Access, ref: str, data: SiteClose, if_match: str | None
) -> Site:
    site = await resolve_site(session, ref, for_update=True)
    _ensure_reaches(access, site)
    check_if_match(if_match, site_etag(site), required=False)
    if site.status == SiteStatus.closed.value:
        raise SiteStatusConflict(f"The site '{site.id}' is already closed.")
    site.status = data.status
    site.status_since = data.since or now().date()
    site.reopens_on = data.reopens_on
    site.status_reason = data.reason
    site.changed()
    site.content_hash = None  # status is content: the next import re-states it
    await session.flush()
    return site


async def reopen_site(
    session: WriteSession, access: Access, ref: str, if_match: str | None
) -> Site:
    site = await resolve_site(session, ref, for_update=True)
    _ensure_reaches(access, site)
    check_if_match(if_match, site_etag(site), required=False)
    if site.status == SiteStatus.open.value:
        raise SiteStatusConflict(f"The site '{site.id}' is already open.")
    site.status = SiteStatus.open.value
    site.status_since = now().date()
    site.reopens_on = None
    site.status_reason = None
    site.changed()
    site.content_hash = None
    await session.flush()
    return site


async def list_sites(
    session: AsyncSession,
    filters: repo.SiteFilters,
    *,
    cursor: str | None,
    limit: int,
    near: tuple[float, float] | None = None,
    radius_km: float = 10.0,
) -> Page[SiteOut]:
    if near is None:
        return await BY_ID.page(
            Page[SiteOut],
            cursor=cursor,
            limit=limit,
            read=lambda after, n: repo.list_sites(session, filters, after=after, limit=n),
            out=site_out,
            key=lambda s: s.id,
        )

    # Nearest first: a bounding box in SQL (indexed) on light rows, the exact
    # distance and the order here, then the full rows of one page only.
    lat, lon = near
    box_filters = replace(filters, bbox=bbox(lat, lon, radius_km))
    ranked = rank(await repo.points_in_bbox(session, box_filters), lat, lon, radius_km)
    after = BY_DISTANCE.after(cursor)
    if after is not None:
        ranked = [t for t in ranked if t > after]
    shown, next_cursor = BY_DISTANCE.cut(ranked, limit, lambda t: t)
    sites = await repo.sites_by_ids(session, [site_id for _, site_id in shown])
    return Page[SiteOut](
        items=[site_out(sites[site_id], d) for d, site_id in shown], next_cursor=next_cursor
    )


async def lookup(session: AsyncSession, request: LookupRequest, max_items: int) -> LookupResponse:
    total = len(request.ids) + len(request.refs)
    if total > max_items:
        raise ValidationProblem(
            f"At most {max_items} ids and refs per look-up; {total} were sent.",
            errors=[{"field": "ids", "reason": f"too many items ({total} > {max_items})"}],
        )
    pairs = [(r.network, r.external_code) for r in request.refs]
    rows = await repo.lookup_sites(session, request.ids, pairs)
    by_id = {s.id: s for s in rows}
    by_sp = {s.sp_code: s for s in rows if s.sp_code}
    by_ref = {(s.network_code, s.external_code): s for s in rows}
    found: dict[str, Site] = {}
    missing_ids: list[str] = []
    for ident in request.ids:
        site = by_id.get(ident) or by_sp.get(ident)
        if site is None:
            missing_ids.append(ident)
        else:
            found[site.id] = site
    missing_refs: list[SiteRef] = []
    for ref in request.refs:
        site = by_ref.get((ref.network, ref.external_code))
        if site is None:
            missing_refs.append(ref)
        else:
            found[site.id] = site
    return LookupResponse(
        found=[summary(s) for s in found.values()],
        missing_ids=missing_ids,
        missing_refs=missing_refs,
    )


def make_filters(
    *,
    network: str | None,
    departement: str | None,
    region: str | None,
    commune: str | None,
    status: SiteStatus | None,
    kind: str | None,
    siret: str | None,
    q: str | None,
) -> repo.SiteFilters:
    words = tuple(w for w in fold(q).split() if w) if q else ()
    return repo.SiteFilters(
        network=network,
        departement=departement,
        region=region,
        commune=commune,
        status=status.value if status else None,
        kind=kind,
        siret=siret,
        words=words[:8],
    )


# --- the open-data export -----------------------------------------------------

EXPORT_FIELDS = table_fields(SiteExportRow)


async def plan_export(
    session: AsyncSession, filters: repo.SiteFilters, since: datetime | None, fmt: ExportFormat
) -> ExportPlan:
    """The export's rows and version (the kit streams them once the route answers)."""
    count, latest = await repo.export_state(session, filters, since)
    return ExportPlan(
        query=repo.export_query(filters, since),
        fields=EXPORT_FIELDS,
        etag=export_etag("sites", fmt.value, filters, since, count, latest),
        last_modified=latest,
        filename="sites",
    )


def export_datapackage(csv_path: str) -> dict[str, Any]:
    """The registry's datapackage.json; ``csv_path`` is where its CSV is served."""
    return datapackage(
        "services-publics-plus-sites",
        [
            Resource(
                name="sites",
                path=csv_path,
                fields=EXPORT_FIELDS,
                title="Reception sites of the public services",
                description="Every site of the Services Publics+ registry, one row each.",
                primary_key=("id",),
            )
        ],
        title="Services Publics+: the registry of reception sites",
    )

"""HTTP layer of the sites service: parse, call the use case, shape the answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status

from spp_shared.contracts.ingest import ImportJob
from spp_shared.contracts.sites import (
    ImportReport,
    LookupRequest,
    LookupResponse,
    NetworkCreate,
    NetworkOut,
    NetworkPatch,
    SiteClose,
    SiteCreate,
    SiteOut,
    SitePatch,
    SitesAction,
    SiteStatus,
)
from spp_shared.contracts.types import DepartementCode, InseeCommuneCode, RegionCode, Siret
from spp_shared.kit.conditional import ConditionalGet, ConditionalGetDep
from spp_shared.kit.db import Database, DatabaseDep, ReadSessionDep, SessionDep
from spp_shared.kit.errors import ValidationProblem
from spp_shared.kit.export import ExportFormat, Since, export_response, export_responses
from spp_shared.kit.idempotency import IdempotencyDep
from spp_shared.kit.pagination import DEFAULT_LIMIT, Page
from spp_shared.kit.params import Cursor, IfMatch, Limit
from spp_shared.kit.permissions import Access, allowed
from spp_sites import serialise, service
from spp_sites.importer.http import import_status, run_import_request
from spp_sites.models import Site
from spp_sites.near import MAX_NEAR_CANDIDATES, MAX_NEAR_RADIUS_KM
from spp_sites.repository import SiteFilters
from spp_sites.settings import SettingsDep

router = APIRouter(prefix="/v1")
# The OpenAPI document's description of each tag used below.
TAGS = {
    "networks": "The networks of public services (CAF, CPAM, France Travail...) whose "
    "sites receive the public.",
    "sites": "The registry of reception sites: search, read, create, change, close, and "
    "bulk import and look-up.",
}


# --- networks -----------------------------------------------------------------


@router.get(
    "/networks",
    tags=["networks"],
    summary="List networks",
    dependencies=[allowed(SitesAction.networks_read)],
)
async def list_networks(
    session: ReadSessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
) -> Page[NetworkOut]:
    return await service.list_networks(session, cursor=cursor, limit=limit, kind=kind)


@router.get(
    "/networks/{code}",
    tags=["networks"],
    response_model=NetworkOut,
    summary="Get a network",
    dependencies=[allowed(SitesAction.networks_read)],
)
async def get_network(
    code: str, session: ReadSessionDep, conditional: ConditionalGetDep
) -> NetworkOut:
    network = await service.get_network(session, code)
    conditional.check(serialise.network_etag(network), network.updated_at)
    return serialise.network_out(network)


@router.post(
    "/networks",
    tags=["networks"],
    status_code=status.HTTP_201_CREATED,
    response_model=NetworkOut,
    summary="Create a network",
    dependencies=[allowed(SitesAction.networks_create)],
)
async def create_network(
    data: NetworkCreate, session: SessionDep, idem: IdempotencyDep
) -> Response:
    network = await service.create_network(session, data)
    headers = {"ETag": serialise.network_etag(network), "Location": f"/v1/networks/{network.code}"}
    return await idem.respond(201, serialise.network_out(network), headers)


@router.patch(
    "/networks/{code}",
    tags=["networks"],
    summary="Change a network (If-Match)",
    dependencies=[allowed(SitesAction.networks_update)],
)
async def patch_network(
    code: str,
    patch: NetworkPatch,
    session: SessionDep,
    response: Response,
    if_match: IfMatch = None,
) -> NetworkOut:
    network = await service.patch_network(session, code, patch, if_match)
    response.headers["ETag"] = serialise.network_etag(network)
    return serialise.network_out(network)


# --- sites --------------------------------------------------------------------


def _with_etag(response: Response, site: Site) -> SiteOut:
    response.headers["ETag"] = serialise.site_etag(site)
    return serialise.site_out(site)


def _parse_near(near: str | None) -> tuple[float, float] | None:
    if near is None:
        return None
    try:
        lat_text, lon_text = near.split(",")
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        lat = lon = float("nan")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValidationProblem(
            "near must be 'lat,lon' in decimal degrees, e.g. near=48.85,2.35",
            errors=[{"location": "query", "field": "near", "reason": "expected 'lat,lon'"}],
        )
    return lat, lon


@router.get(
    "/sites",
    tags=["sites"],
    summary="List and search sites",
    dependencies=[allowed(SitesAction.sites_read)],
)
async def list_sites(
    request: Request,
    session: ReadSessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    network: Annotated[str | None, Query(max_length=64)] = None,
    departement: Annotated[DepartementCode | None, Query()] = None,
    region: Annotated[RegionCode | None, Query()] = None,
    commune: Annotated[InseeCommuneCode | None, Query()] = None,
    status_: Annotated[SiteStatus | None, Query(alias="status")] = None,
    kind: Annotated[str | None, Query(max_length=200)] = None,
    siret: Annotated[Siret | None, Query()] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Words of the name or commune.")
    ] = None,
    near: Annotated[
        str | None,
        Query(
            description="`lat,lon`: nearest first, within `radius_km`; the nearest "
            f"{MAX_NEAR_CANDIDATES:,} at most (list wider areas by `departement` or `region`)."
        ),
    ] = None,
    radius_km: Annotated[
        float,
        Query(gt=0, le=MAX_NEAR_RADIUS_KM, description="Kilometres around `near`."),
    ] = 10.0,
) -> Page[SiteOut]:
    filters = service.make_filters(
        network=network,
        departement=departement,
        region=region,
        commune=commune,
        status=status_,
        kind=kind,
        siret=siret,
        q=q,
    )
    return await service.list_sites(
        session,
        filters,
        cursor=cursor,
        limit=limit,
        near=_parse_near(near),
        radius_km=radius_km,
    )


@router.post(
    "/sites",
    tags=["sites"],
    status_code=status.HTTP_201_CREATED,
    response_model=SiteOut,
    summary="Create a site",
)
async def create_site(
    data: SiteCreate,
    session: SessionDep,
    access: Annotated[Access, allowed(SitesAction.sites_create)],
    idem: IdempotencyDep,
) -> Response:
    site = await service.create_site(session, access, data)
    headers = {"ETag": serialise.site_etag(site), "Location": f"/v1/sites/{site.id}"}
    return await idem.respond(201, serialise.site_out(site), headers)


@router.post(
    "/sites/import",
    tags=["sites"],
    summary="Bulk import sites (CSV or NDJSON, streamed)",
    response_model=ImportReport,
    responses={
        202: {
            "model": ImportJob,
            "description": "async=true (or Prefer: respond-async): the file is stored and "
            "will be imported by the worker; Location is its status URL.",
            "headers": {"Location": {"schema": {"type": "string"}}},
        }
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "text/csv": {"schema": {"type": "string", "format": "binary"}},
                "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            }
        }
    },
)
async def import_sites(
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    access: Annotated[Access, allowed(SitesAction.sites_import)],
    dry_run: Annotated[bool, Query(description="Validate only; write nothing.")] = False,
    keep_valid: Annotated[
        bool, Query(description="Write the valid rows even if some are rejected.")
    ] = False,
    background: Annotated[
        bool,
        Query(
            alias="async",
            description="Answer 202 at once and import in the background (files too large "
            "for one request); the Location header is where to read the outcome.",
        ),
    ] = False,
    prefer: Annotated[
        str | None, Header(description="respond-async: the same as async=true (RFC 7240).")
    ] = None,
) -> Response:
    return await run_import_request(
        request,
        db,
        settings,
        access.principal,
        dry_run=dry_run,
        keep_valid=keep_valid,
        background=background or _respond_async(prefer),
    )


def _respond_async(prefer: str | None) -> bool:
    return prefer is not None and any(
        p.split(";")[0].strip().lower() == "respond-async" for p in prefer.split(",")
    )


@router.get(
    "/sites/import/{import_id}",
    tags=["sites"],
    summary="Where a background import is, then its report or problem",
)
async def get_import_job(
    import_id: Annotated[str, Path(max_length=26)],
    db: DatabaseDep,
    access: Annotated[Access, allowed(SitesAction.sites_import)],
) -> ImportJob:
    return await import_status(db, access.principal, import_id)


@router.post(
    "/sites/lookup",
    tags=["sites"],
    summary="Bulk look-up of sites (services)",
    dependencies=[allowed(SitesAction.sites_lookup)],
)
async def lookup_sites(
    data: LookupRequest, session: ReadSessionDep, settings: SettingsDep
) -> LookupResponse:
    return await service.lookup(session, data, settings.lookup_max_items)


# Before /sites/{ref}: "export" is a path, not a site reference.


@dataclass(frozen=True)
class _ExportQuery:
    filters: SiteFilters
    since: datetime | None


async def _export_query(
    network: Annotated[str | None, Query(max_length=64)] = None,
    departement: Annotated[DepartementCode | None, Query()] = None,
    region: Annotated[RegionCode | None, Query()] = None,
    status_: Annotated[SiteStatus | None, Query(alias="status")] = None,
    since: Since = None,
) -> _ExportQuery:
    filters = service.make_filters(
        network=network,
        departement=departement,
        region=region,
        commune=None,
        status=status_,
        kind=None,
        siret=None,
        q=None,
    )
    return _ExportQuery(filters, since)


ExportQueryDep = Annotated[_ExportQuery, Depends(_export_query)]


async def _export(
    db: Database,
    session: ReadSessionDep,
    query: _ExportQuery,
    fmt: ExportFormat,
    conditional: ConditionalGet,
) -> Response:
    plan = await service.plan_export(session, query.filters, query.since, fmt)
    return export_response(db, plan, fmt, conditional)


@router.get(
    "/sites/export",
    tags=["sites"],
    summary="Export the registry (CSV or JSON Lines, streamed; open data)",
    response_class=Response,
    responses=export_responses(description="The sites: CSV with a header row, or JSON Lines."),
    dependencies=[allowed(SitesAction.sites_read)],
)
async def export_sites(
    db: DatabaseDep,
    session: ReadSessionDep,
    query: ExportQueryDep,
    conditional: ConditionalGetDep,
    format_: Annotated[
        ExportFormat, Query(alias="format", description="csv, or jsonl (JSON Lines).")
    ] = ExportFormat.csv,
) -> Response:
    return await _export(db, session, query, format_, conditional)


@router.get(
    "/sites/export/sites.csv",
    tags=["sites"],
    summary="The registry's CSV, where its datapackage.json points",
    response_class=Response,
    responses=export_responses(ExportFormat.csv, description="The sites, CSV."),
    dependencies=[allowed(SitesAction.sites_read)],
)
async def export_sites_csv(
    db: DatabaseDep, session: ReadSessionDep, query: ExportQueryDep, conditional: ConditionalGetDep
) -> Response:
    return await _export(db, session, query, ExportFormat.csv, conditional)


@router.get(
    "/sites/export/datapackage.json",
    tags=["sites"],
    summary="The export's Frictionless data package: each column's type and meaning",
    dependencies=[allowed(SitesAction.sites_read)],
)
async def export_datapackage() -> dict[str, Any]:
    # A path relative to this descriptor (Data Package spec): the CSV beside it.
    return service.export_datapackage("sites.csv")


@router.get(
    "/sites/{ref}",
    tags=["sites"],
    response_model=SiteOut,
    summary="Get a site by id, SP+ code or network:code",
    dependencies=[allowed(SitesAction.sites_read)],
)
async def get_site(ref: str, session: ReadSessionDep, conditional: ConditionalGetDep) -> SiteOut:
    site = await service.resolve_site(session, ref)
    conditional.check(serialise.site_etag(site), site.updated_at)
    return serialise.site_out(site)


@router.patch("/sites/{ref}", tags=["sites"], summary="Change a site (If-Match required)")
async def patch_site(
    ref: str,
    patch: SitePatch,
    session: SessionDep,
    access: Annotated[Access, allowed(SitesAction.sites_update)],
    response: Response,
    if_match: IfMatch = None,
) -> SiteOut:
    site = await service.patch_site(session, access, ref, patch, if_match)
    return _with_etag(response, site)


@router.post("/sites/{ref}/close", tags=["sites"], summary="Close a site (never deletes)")
async def close_site(
    ref: str,
    data: SiteClose,
    session: SessionDep,
    access: Annotated[Access, allowed(SitesAction.sites_close)],
    response: Response,
    if_match: IfMatch = None,
) -> SiteOut:
    site = await service.close_site(session, access, ref, data, if_match)
    return _with_etag(response, site)


@router.post("/sites/{ref}/reopen", tags=["sites"], summary="Reopen a closed site")
async def reopen_site(
    ref: str,
    session: SessionDep,
    access: Annotated[Access, allowed(SitesAction.sites_close)],
    response: Response,
    if_match: IfMatch = None,
) -> SiteOut:
    site = await service.reopen_site(session, access, ref, if_match)
    return _with_etag(response, site)

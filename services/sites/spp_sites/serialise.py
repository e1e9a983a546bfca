"""What a client reads of a network or a site: its contract shape and its ETag.

Plain functions of a row, no queries: the service and the routes shape
their answers here, once.
"""

from __future__ import annotations

from spp_shared.contracts.sites import (
    AddressOut,
    ContactOut,
    CoordinatesOut,
    NetworkOut,
    SiteOut,
    SiteStatus,
    SiteSummary,
    StatusOut,
)
from spp_shared.kit.etags import make_etag
from spp_sites.models import Network, Site


def site_etag(site: Site) -> str:
    return make_etag(site.id, site.version)


def network_etag(network: Network) -> str:
    return make_etag(network.code, network.version)


def network_out(n: Network) -> NetworkOut:
    return NetworkOut.model_validate(n, from_attributes=True)


def site_out(s: Site, distance_km: float | None = None) -> SiteOut:
    return SiteOut(
        id=s.id,
        network=s.network_code,
        external_code=s.external_code,
        sp_code=s.sp_code,
        parent_sp_code=s.parent_sp_code,
        parent_id=s.parent_id,
        name=s.name,
        kind=s.kind,
        level=s.level,
        siret=s.siret,
        address=AddressOut(
            line=s.address_line,
            complement=s.address_complement,
            postcode=s.postcode,
            commune_code=s.commune_code,
            commune_name=s.commune_name,
            departement_code=s.departement_code,
            region_code=s.region_code,
            country=s.country,
        ),
        coordinates=(
            CoordinatesOut(lat=s.latitude, lon=s.longitude)
            if s.latitude is not None and s.longitude is not None
            else None
        ),
        contact=ContactOut(
            phone=s.phone, email=s.email, website=s.website, appointment_url=s.appointment_url
        ),
        opening_hours=s.opening_hours,
        accessibility=s.accessibility,
        status=StatusOut(
            state=SiteStatus(s.status),
            since=s.status_since,
            reopens_on=s.reopens_on,
            reason=s.status_reason,
        ),
        sp_member_since=s.sp_member_since,
        created_at=s.created_at,
        updated_at=s.updated_at,
        version=s.version,
        distance_km=round(distance_km, 3) if distance_km is not None else None,
    )


def summary(s: Site) -> SiteSummary:
    return SiteSummary(
        id=s.id,
        network=s.network_code,
        external_code=s.external_code,
        sp_code=s.sp_code,
        name=s.name,
        status=SiteStatus(s.status),
        commune_code=s.commune_code,
        departement_code=s.departement_code,
        region_code=s.region_code,
    )

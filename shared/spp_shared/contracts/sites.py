"""Public request and response models of the site registry (networks, sites), and its actions."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from spp_shared.contracts.base import Strict, single_line
from spp_shared.contracts.ingest import ImportReportBase
from spp_shared.contracts.permissions import ADMIN, PUBLIC, SIGNED_IN, Action, Role, Scope
from spp_shared.contracts.types import (
    Coordinates,
    DepartementCode,
    Email,
    FrenchPhone,
    HttpUrl,
    InseeCommuneCode,
    NetworkCode,
    OpeningHours,
    Postcode,
    RegionCode,
    Siret,
    check_visible_code,
    check_visible_name,
)

# Names also refuse invisible characters (zero-width, soft hyphen, tags...).
_VISIBLE = AfterValidator(check_visible_name)

# Lengths are those of the columns they are stored in (services/sites models).
Name = Annotated[str, single_line(300), _VISIBLE]
Kind = Annotated[str, single_line(200)]
AddressLine = Annotated[str, single_line(300)]
CommuneName = Annotated[str, single_line(200)]
Country = Annotated[str, single_line(100)]
NetworkName = Annotated[str, single_line(255), _VISIBLE]
Reason = Annotated[str, single_line(500)]
ExternalCode = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\s\x00-\x1f\x7f]+$"
    ),
    AfterValidator(check_visible_code),
]
# The programme's structure codes: letters and digits, inner dashes (``STR-9``).
SP_CODE_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$"
SpCode = Annotated[str, StringConstraints(pattern=SP_CODE_PATTERN)]
Url = Annotated[HttpUrl, StringConstraints(max_length=500)]


_MANAGERS = {Role.network_manager: Scope.network, Role.programme_admin: Scope.any}


class SitesAction(Action):
    """What a caller can ask of the site registry, and who may (the matrix's rows)."""

    networks_read = "networks:read", "list and read networks", PUBLIC
    networks_create = "networks:create", "create a network", ADMIN
    networks_update = "networks:update", "change a network", ADMIN
    sites_read = "sites:read", "list, search and read sites", PUBLIC
    # Up to 10,000 keys per call: for the platform's services and signed-in
    # callers, not for anonymous scraping.
    sites_lookup = "sites:lookup", "bulk look-up of sites", SIGNED_IN
    sites_create = (
        "sites:create",
        "create a site (SP+ code: programme admins only)",
        _MANAGERS,
    )
    sites_update = (
        "sites:update",
        "change a site (agents: hours, contact, accessibility only; "
        "SP+ code: programme admins only)",
        {Role.agent: Scope.site} | _MANAGERS,
    )
    sites_close = "sites:close", "close or reopen a site", _MANAGERS
    sites_import = (
        "sites:import",
        "bulk import sites (rows of other networks are rejected; SP+ codes: programme admins only)",
        _MANAGERS,
    )


class NetworkKind(StrEnum):
    social_security = "securite-sociale"
    state_local = "etat-territorial"
    state_operator = "operateur"
    france_services = "france-services"
    justice = "justice"
    security = "securite"
    education = "education"
    local_authority = "collectivite"
    other = "other"


class ResultsLevel(StrEnum):
    """The level at which a network publishes its results (DOMAIN.md)."""

    national = "national"
    region = "region"
    departement = "departement"
    site = "site"


class SiteStatus(StrEnum):
    open = "open"
    temporarily_closed = "temporarily_closed"
    closed = "closed"


class NetworkCreate(Strict):
    code: NetworkCode
    name: NetworkName
    ministry: NetworkName | None = None
    kind: NetworkKind = NetworkKind.other
    website: Url | None = None
    results_level: ResultsLevel = ResultsLevel.site
    aliases: list[NetworkName] = Field(default_factory=list, max_length=20)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "code": "caf",
                    "name": "Caisses d'allocations familiales",
                    "ministry": "Ministère des Solidarités",
                    "kind": "securite-sociale",
                    "website": "https://www.caf.fr",
                    "results_level": "departement",
                }
            ]
        },
    )


class NetworkPatch(Strict):
    name: NetworkName | None = None
    ministry: NetworkName | None = None
    kind: NetworkKind | None = None
    website: Url | None = None
    results_level: ResultsLevel | None = None
    aliases: list[NetworkName] | None = Field(default=None, max_length=20)


class NetworkOut(BaseModel):
    code: str
    name: str
    ministry: str | None
    kind: str
    website: str | None
    results_level: str
    aliases: list[str]
    created_at: datetime
    updated_at: datetime
    version: int


class Address(Strict):
    line: AddressLine | None = None
    complement: AddressLine | None = None
    postcode: Postcode | None = None
    commune_code: InseeCommuneCode | None = None
    commune_name: CommuneName | None = None
    departement_code: DepartementCode | None = None
    region_code: RegionCode | None = None
    country: Country = "France"


class Contact(Strict):
    phone: FrenchPhone | None = None
    email: Email | None = None
    website: Url | None = None
    appointment_url: Url | None = None


class Accessibility(Strict):
    wheelchair: bool | None = None
    hearing_loop: bool | None = None
    sign_language: bool | None = None
    easy_to_read: bool | None = Field(default=None, description="FALC documents available")
    visual_aids: bool | None = None
    accessible_parking: bool | None = None


SITE_EXAMPLE: dict[str, Any] = {
    "network": "caf",
    "external_code": "CAF-75-PARIS-11",
    "name": "Caf de Paris - accueil Paris 11e",
    "kind": "agence",
    "siret": "53493317100009",
    "address": {
        "line": "67 avenue Parmentier",
        "postcode": "75011",
        "commune_code": "75111",
        "commune_name": "Paris 11e Arrondissement",
    },
    "coordinates": {"lat": 48.8628, "lon": 2.3749},
    "contact": {"phone": "0969 32 52 52", "website": "https://www.caf.fr"},
    "opening_hours": {
        "monday": [{"opens": "08:30", "closes": "12:30"}, {"opens": "13:30", "closes": "16:30"}]
    },
    "accessibility": {"wheelchair": True},
}


class SiteCreate(Strict):
    network: NetworkCode
    external_code: ExternalCode
    sp_code: SpCode | None = None
    parent_sp_code: SpCode | None = None
    name: Name
    kind: Kind | None = None
    level: ResultsLevel = ResultsLevel.site
    siret: Siret | None = None
    address: Address | None = None
    coordinates: Coordinates | None = None
    contact: Contact | None = None
    opening_hours: OpeningHours | None = None
    accessibility: Accessibility | None = None
    sp_member_since: date | None = None

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SITE_EXAMPLE]})


class SitePatch(Strict):
    """Fields to change; absent fields stay, ``null`` clears an optional one."""

    network: NetworkCode | None = None
    external_code: ExternalCode | None = None
    sp_code: SpCode | None = None
    parent_sp_code: SpCode | None = None
    name: Name | None = None
    kind: Kind | None = None
    level: ResultsLevel | None = None
    siret: Siret | None = None
    address: Address | None = None
    coordinates: Coordinates | None = None
    contact: Contact | None = None
    opening_hours: OpeningHours | None = None
    accessibility: Accessibility | None = None
    sp_member_since: date | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Caf de Paris - Parmentier"}]},
    )

    @model_validator(mode="after")
    def _required_not_null(self) -> SitePatch:
        for name in ("network", "external_code", "name", "level"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class SiteClose(Strict):
    status: Literal["closed", "temporarily_closed"] = "closed"
    since: date | None = Field(default=None, description="Defaults to today (UTC).")
    reopens_on: date | None = None
    reason: Reason | None = None

    @model_validator(mode="after")
    def _reopening(self) -> SiteClose:
        if self.reopens_on is not None and self.status == "closed":
            raise ValueError("reopens_on is only for a temporarily closed site")
        start = self.since or datetime.now(UTC).date()
        if self.reopens_on is not None and self.reopens_on <= start:
            raise ValueError("reopens_on must be after the closing date (since, or today)")
        return self


class AddressOut(BaseModel):
    line: str | None
    complement: str | None
    postcode: str | None
    commune_code: str | None
    commune_name: str | None
    departement_code: str | None
    region_code: str | None
    country: str


class ContactOut(BaseModel):
    phone: str | None
    email: str | None
    website: str | None
    appointment_url: str | None


class StatusOut(BaseModel):
    state: SiteStatus
    since: date | None
    reopens_on: date | None
    reason: str | None


class CoordinatesOut(BaseModel):
    lat: float
    lon: float


class SiteOut(BaseModel):
    id: str
    network: str
    external_code: str
    sp_code: str | None
    parent_sp_code: str | None
    parent_id: str | None
    name: str
    kind: str | None
    level: str
    siret: str | None
    address: AddressOut
    coordinates: CoordinatesOut | None
    contact: ContactOut
    opening_hours: dict[str, Any] | None
    accessibility: dict[str, Any] | None
    status: StatusOut
    sp_member_since: date | None
    created_at: datetime
    updated_at: datetime
    version: int
    distance_km: float | None = Field(default=None, description="Only with the `near` filter.")


class SiteRef(Strict):
    network: NetworkCode
    external_code: ExternalCode


class LookupRequest(Strict):
    ids: list[ExternalCode] = Field(
        default_factory=list,
        description="Site ids or SP+ structure codes.",
    )
    refs: list[SiteRef] = Field(default_factory=list)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"ids": ["3Tn8gzTdcz"], "refs": [{"network": "caf", "external_code": "X1"}]}
            ]
        },
    )


class SiteSummary(BaseModel):
    """What other services need to know about a site."""

    id: str
    network: str
    external_code: str
    sp_code: str | None
    name: str
    status: SiteStatus
    commune_code: str | None
    departement_code: str | None
    region_code: str | None


class LookupResponse(BaseModel):
    found: list[SiteSummary]
    missing_ids: list[str]
    missing_refs: list[SiteRef]


class ImportReport(ImportReportBase):
    committed: bool = Field(description="Whether the registry was changed.")
    networks_created: list[str]


class SiteExportRow(BaseModel):
    """One site in the registry's open-data export (CSV or JSON Lines): its public fields, flat."""

    id: str = Field(description="The site's identifier in this registry (stable).")
    network: str = Field(description="Code of the network the site belongs to.")
    external_code: str = Field(description="The site's code in its network.")
    sp_code: str | None = Field(description="Services Publics+ structure code.")
    parent_sp_code: str | None = Field(description="SP+ code of the structure above it.")
    name: str = Field(description="Name shown to the public.")
    kind: str | None = Field(description="Typology in the network (agence, accueil...).")
    level: ResultsLevel = Field(description="Level at which the site publishes its results.")
    siret: str | None = Field(description="SIRET of the establishment, 14 digits.")
    address_line: str | None = Field(description="Street address.")
    address_complement: str | None = Field(description="Address complement.")
    postcode: str | None = Field(description="French postcode, 5 digits.")
    commune_code: str | None = Field(description="INSEE code of the commune (COG 2024).")
    commune_name: str | None = Field(description="Name of the commune.")
    departement_code: str | None = Field(description="INSEE code of the département.")
    region_code: str | None = Field(description="INSEE code of the région.")
    country: str = Field(description="Country (France, or abroad for consulates).")
    latitude: float | None = Field(description="WGS 84 latitude, decimal degrees.")
    longitude: float | None = Field(description="WGS 84 longitude, decimal degrees.")
    phone: str | None = Field(description="Phone number, E.164.")
    email: str | None = Field(description="The site's functional e-mail address.")
    website: str | None = Field(description="Web page of the site.")
    appointment_url: str | None = Field(description="Where to book an appointment.")
    opening_hours: dict[str, Any] | None = Field(
        description="Opening hours by weekday: lists of {opens, closes} (HH:MM)."
    )
    accessibility: dict[str, Any] | None = Field(description="Accessibility features (booleans).")
    status: SiteStatus = Field(description="open, closed or temporarily_closed.")
    status_since: date | None = Field(description="Since when the status holds.")
    reopens_on: date | None = Field(description="Reopening date of a temporarily closed site.")
    status_reason: str | None = Field(description="Why the site is closed.")
    sp_member_since: date | None = Field(description="When the site joined Services Publics+.")
    updated_at: datetime = Field(
        description="Last change, UTC: pass the latest one you hold as since= to pull changes."
    )

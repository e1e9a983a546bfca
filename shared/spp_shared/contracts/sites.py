"""Public request and response models of the site registry (networks, sites)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from spp_shared.contracts.types import (
    Coordinates,
    DepartementCode,
    FrenchPhone,
    InseeCommuneCode,
    NetworkCode,
    OpeningHours,
    Postcode,
    RegionCode,
    Siret,
)

Text300 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
ExternalCode = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^\S+$")
]
SpCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,32}$")]
HttpUrl = Annotated[str, StringConstraints(max_length=500, pattern=r"^https?://\S+$")]
Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class Strict(BaseModel):
    """Request models refuse unknown fields: nothing is silently ignored."""

    model_config = ConfigDict(extra="forbid")


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
    name: Text300
    ministry: Text300 | None = None
    kind: NetworkKind = NetworkKind.other
    website: HttpUrl | None = None
    results_level: ResultsLevel = ResultsLevel.site
    aliases: list[Text300] = Field(default_factory=list, max_length=20)

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
    name: Text300 | None = None
    ministry: Text300 | None = None
    kind: NetworkKind | None = None
    website: HttpUrl | None = None
    results_level: ResultsLevel | None = None
    aliases: list[Text300] | None = Field(default=None, max_length=20)


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
    line: Text300 | None = None
    complement: Text300 | None = None
    postcode: Postcode | None = None
    commune_code: InseeCommuneCode | None = None
    commune_name: Text300 | None = None
    departement_code: DepartementCode | None = None
    region_code: RegionCode | None = None
    country: Text300 = "France"


class Contact(Strict):
    phone: FrenchPhone | None = None
    email: Email | None = None
    website: HttpUrl | None = None
    appointment_url: HttpUrl | None = None


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
    "siret": "53493317700015",
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
    name: Text300
    kind: Text300 | None = None
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
    name: Text300 | None = None
    kind: Text300 | None = None
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
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None

    @model_validator(mode="after")
    def _reopening(self) -> SiteClose:
        if self.reopens_on is not None and self.status == "closed":
            raise ValueError("reopens_on is only for a temporarily closed site")
        if self.reopens_on and self.since and self.reopens_on <= self.since:
            raise ValueError("reopens_on must be after since")
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
    ids: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
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


class ImportIssue(BaseModel):
    line: int = Field(description="1-based line (CSV, header is line 1) or record number (NDJSON)")
    field: str | None = None
    reason: str


class ImportReport(BaseModel):
    format: str
    dry_run: bool
    committed: bool = Field(description="Whether the registry was changed.")
    rows: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    rejected_rows: list[ImportIssue]
    warnings: list[ImportIssue]
    warnings_total: int
    networks_created: list[str]
    truncated: bool = Field(
        default=False, description="Lists were cut at their maximum length; counts are complete."
    )

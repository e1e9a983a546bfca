"""Who may call the platform: the platform's actions, API keys, agents' role
mappings, the audit log.

:data:`PLATFORM` lists every service's actions (each service declares its
own in its contract module): the matrix the gateway checks credentials
against, that docs/permissions.md shows and the matrix test walks.
The request models check shapes (lengths, known roles and actions, a
timezone on dates); the rules tying fields together (a network manager
needs a network...) are the gateway's (``spp_gateway.store.grants``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from spp_shared.contracts.base import Strict, single_line
from spp_shared.contracts.indicators import IndicatorsAction
from spp_shared.contracts.jobs import JobsAction
from spp_shared.contracts.permissions import ADMIN, Action, ActionOf, Role, by_value
from spp_shared.contracts.sites import ExternalCode, SitesAction
from spp_shared.contracts.types import NetworkCode, normalize_email, normalize_siret


class GatewayAction(Action):
    """What a caller can ask of the gateway itself, and who may (the matrix's rows)."""

    api_keys_manage = "api-keys:manage", "create, list, rotate and revoke API keys", ADMIN
    agent_mappings_manage = (
        "agent-mappings:manage",
        "grant agents their network, sites and roles",
        ADMIN,
    )
    audit_read = "audit:read", "read the audit log", ADMIN


# The platform's permission matrix: every service's actions, and the kit's
# jobs list that every service serves, in the order docs/permissions.md
# lists them. A new service adds its enum here.
PLATFORM: Final[tuple[type[Action], ...]] = (
    SitesAction,
    IndicatorsAction,
    GatewayAction,
    JobsAction,
)
ACTIONS: Final[Mapping[str, Action]] = by_value(PLATFORM)
# Any action of the platform, as API key scopes name them (one ``Action`` schema).
PlatformAction = Annotated[
    Action,
    ActionOf(ACTIONS, "Action", "Everything a caller can ask of the platform (``resource:verb``)."),
]

# --- roles each credential may carry ------------------------------------------

# ``public`` is everyone already; ``citizen_author`` is the private token of
# one submission, never a standing credential.
API_KEY_ROLES: frozenset[Role] = frozenset(Role) - {Role.public, Role.citizen_author}
# Agents are people: never ``service`` (that is for machines, through keys).
AGENT_ROLES: frozenset[Role] = frozenset(
    {Role.agent, Role.network_manager, Role.moderator, Role.certifier, Role.programme_admin}
)

MAX_ROLES = 5
MAX_SITES = 500

KeyName = Annotated[str, single_line(100)]
Owner = Annotated[
    str,
    single_line(200),
    Field(description="The organisation or team responsible for the key."),
]
SiteKey = Annotated[ExternalCode, Field(description="A site id or an SP+ structure code.")]

T = TypeVar("T")


def _in_utc(value: datetime) -> datetime:
    # 9999-12-31T23:59:59-01:00 is a valid aware datetime with no UTC
    # equivalent: the database columns store UTC, so it must be refused here
    # (422), not by an OverflowError when the value is bound (500).
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date out of range once converted to UTC") from None


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_in_utc)]
"""An aware datetime, converted to UTC (refused when UTC cannot hold it)."""


def _unique(values: Sequence[T]) -> list[T]:
    """``values`` without repeats, first occurrence kept (order is the caller's)."""
    return list(dict.fromkeys(values))


# --- API keys -------------------------------------------------------------------


class ApiKeyCreate(Strict):
    name: KeyName
    owner: Owner
    roles: list[Role] = Field(min_length=1, max_length=MAX_ROLES)
    scopes: list[PlatformAction] = Field(
        default_factory=list,
        max_length=len(ACTIONS),
        description="Actions the key is limited to; empty: everything its roles allow.",
    )
    network: NetworkCode | None = None
    sites: list[SiteKey] = Field(default_factory=list, max_length=MAX_SITES)
    expires_at: UtcDatetime | None = Field(
        default=None, description="When the key stops working (with a timezone); none: never."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Import nightly - Caf",
                    "owner": "Cnaf - direction des systèmes d'information",
                    "roles": ["network_manager"],
                    "scopes": ["sites:import"],
                    "network": "caf",
                    "expires_at": "2027-12-31T23:59:59Z",
                }
            ]
        },
    )

    @field_validator("roles", "scopes", "sites")
    @classmethod
    def _no_repeats(cls, values: list[Any]) -> list[Any]:
        return _unique(values)


class ApiKeyOut(BaseModel):
    id: str
    prefix: str = Field(description="The non-secret start of the key, to recognise it in lists.")
    name: str
    owner: str
    roles: list[Role]
    scopes: list[str]
    network: str | None
    sites: list[str]
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(
        description="Approximate: written at most once a minute (by default)."
    )
    rotated_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(
        description="The whole key, to send as `Authorization: Bearer <secret>`. Shown "
        "once: the platform keeps only a digest of it."
    )


# --- agents' role mappings --------------------------------------------------------

MatchKind = Literal["subject", "email", "email_domain", "siret"]
# A value is a provider's subject, an e-mail address, a domain or a SIRET.
MappingValue = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=254)
]


def normalize_match_value(match: str, value: str) -> str:
    """The canonical form a mapping is stored and looked up under.

    E-mail addresses and domains compare without case (providers do not
    agree on it), SIRETs without spaces; subjects are opaque, kept as sent.
    """
    if match == "email":
        return normalize_email(value).lower()
    if match == "email_domain":
        return normalize_email("x@" + value.strip().removeprefix("@")).partition("@")[2].lower()
    if match == "siret":
        return normalize_siret(value)
    if not value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("subject must be single-line text")
    return value


class AgentMappingCreate(Strict):
    match: MatchKind = Field(
        description="What identifies the agents: the provider's subject, their e-mail "
        "address, their e-mail domain, or their organisation's SIRET."
    )
    value: MappingValue
    roles: list[Role] = Field(min_length=1, max_length=MAX_ROLES)
    network: NetworkCode | None = None
    sites: list[SiteKey] = Field(default_factory=list, max_length=MAX_SITES)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "match": "email_domain",
                    "value": "caf.fr",
                    "roles": ["agent"],
                    "network": "caf",
                }
            ]
        },
    )

    @field_validator("value")
    @classmethod
    def _canonical(cls, value: str, info: ValidationInfo) -> str:
        match = info.data.get("match")
        return normalize_match_value(match, value) if match is not None else value

    @field_validator("roles", "sites")
    @classmethod
    def _no_repeats(cls, values: list[Any]) -> list[Any]:
        return _unique(values)


class AgentMappingPatch(Strict):
    """Fields to change; absent fields stay, ``network: null`` removes the network.

    What a mapping matches is not patchable: delete it and create another,
    so the audit log shows who lost a grant and who gained one.
    """

    roles: list[Role] | None = Field(default=None, min_length=1, max_length=MAX_ROLES)
    network: NetworkCode | None = None
    sites: list[SiteKey] | None = Field(default=None, max_length=MAX_SITES)

    @field_validator("roles", "sites")
    @classmethod
    def _not_null(cls, values: list[Any] | None, info: ValidationInfo) -> list[Any]:
        if values is None:
            raise ValueError(f"{info.field_name} cannot be null")
        return _unique(values)


class AgentMappingOut(BaseModel):
    id: str
    match: MatchKind
    value: str
    network: str | None
    sites: list[str]
    roles: list[Role]
    created_at: datetime
    created_by: str
    updated_at: datetime
    version: int


# --- audit log -----------------------------------------------------------------------


class AuditEventOut(BaseModel):
    id: str
    at: datetime
    actor: str = Field(description='Who acted: "api_key:<id>", "agent:<subject>", "cli"...')
    actor_kind: str
    action: str = Field(description='"api_key.created", "agent_mapping.updated", "request"...')
    target: str | None = Field(description="The object's id, or the path (no query string).")
    status: int = Field(description="The HTTP status answered (the CLI records the same).")
    request_id: str | None
    details: dict[str, Any] = Field(
        description="What changed. Never a secret, a digest of one, or citizens' data."
    )

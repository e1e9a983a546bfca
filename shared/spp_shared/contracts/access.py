"""Who may call the platform: API keys, agents' role mappings, the audit log.

The request models check shapes (lengths, known roles and actions, a
timezone on dates); the rules tying fields together (a network manager
needs a network...) are the plain function :func:`grant_issues`, which the
gateway's store applies to API and command line alike and turns into a 422
naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NamedTuple, TypeVar

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
from spp_shared.contracts.sites import ExternalCode
from spp_shared.contracts.types import NetworkCode, normalize_email, normalize_siret
from spp_shared.kit.identity import Principal, PrincipalKind, Role
from spp_shared.kit.permissions import MATRIX, WIDTH, Action, Scope, grant

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


class FieldIssue(NamedTuple):
    field: str
    reason: str


def grant_issues(
    *,
    roles: Iterable[Role],
    network: str | None,
    sites: Sequence[str],
    scopes: Iterable[str] = (),
    allowed_roles: frozenset[Role] = API_KEY_ROLES,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> list[FieldIssue]:
    """What is wrong with a grant of ``roles`` (empty list: nothing).

    Few rules, each closing a way to hand out a credential that does not do
    what its creator thinks:

    * only ``allowed_roles`` (API keys: not ``public`` nor ``citizen_author``;
      agents: not ``service`` either);
    * a network manager acts on one network: it needs ``network``;
    * an agent acts on its sites: it needs ``network`` (every site of it) or
      ``sites``;
    * ``sites`` only matter to the agent role (the only one granted at site
      scope): on any other grant they would be silently ignored;
    * each scope must be an action one of the roles grants: scopes narrow a
      credential, they never widen it, so any other scope is a mistake;
    * ``expires_at``, when given, is in the future.
    """
    issues: list[FieldIssue] = []
    role_set = set(roles)
    refused = sorted(r.value for r in role_set - allowed_roles)
    if refused:
        allowed = ", ".join(sorted(r.value for r in allowed_roles))
        issues.append(
            FieldIssue("roles", f"{', '.join(refused)} cannot be granted here (allowed: {allowed})")
        )
    if Role.network_manager in role_set and network is None:
        issues.append(FieldIssue("network", "a network_manager needs the network it manages"))
    if Role.agent in role_set and network is None and not sites:
        issues.append(FieldIssue("network", "an agent needs a network or a list of sites"))
    if sites and Role.agent not in role_set:
        issues.append(FieldIssue("sites", "sites only apply to the agent role"))
    for scope in scopes:
        try:
            row = MATRIX[Action(scope)]
        except ValueError:
            issues.append(FieldIssue("scopes", f"'{scope}' is not an action of the platform"))
            continue
        if Role.public not in row and not any(r in row for r in role_set):
            issues.append(FieldIssue("scopes", f"no role of this grant allows '{scope}'"))
    if expires_at is not None and now is not None and expires_at <= now:
        issues.append(FieldIssue("expires_at", "must be in the future"))
    return issues


def _covers(actor: Principal, mine: Scope, grantee: Principal, theirs: Scope) -> bool:
    """Whether ``actor``'s grant ``mine`` reaches at least as far as ``theirs``."""
    if mine is Scope.any:
        return True
    if WIDTH[theirs] > WIDTH[mine] or theirs is Scope.own:
        return False
    if mine is Scope.network:
        return actor.network is not None and grantee.network == actor.network and not grantee.sites
    if mine is Scope.site and actor.sites:
        return bool(grantee.sites) and set(grantee.sites) <= set(actor.sites)
    return actor.network is not None and grantee.network == actor.network and not grantee.sites


def escalation_issues(
    actor: Principal,
    *,
    roles: Iterable[Role],
    network: str | None,
    sites: Sequence[str],
    scopes: Iterable[str] = (),
) -> list[FieldIssue]:
    """What a grant would allow that ``actor`` itself may not (empty: nothing).

    Scopes narrow a credential; handing out (or recovering by rotation) a
    credential that reaches further would undo that: an admin key scoped to
    ``api-keys:manage`` must not mint an unscoped admin key, nor an admin key
    scoped to ``agent-mappings:manage`` make someone an unscoped admin. Every
    non-public action the grant allows must be allowed to ``actor`` at least
    as far. The unscoped administrators (bootstrap token, command line,
    unscoped admin keys and agents) are never refused. How long a grant lasts
    is :func:`outlives_caller`'s rule, applied where a grant is handed out
    (creation, rotation), not to reading, listing or revoking one.
    """
    grantee = Principal(
        subject="grantee",
        kind=PrincipalKind.api_key,
        roles=list(roles),
        scopes=list(scopes),
        network=network,
        sites=list(sites),
    )
    beyond: list[str] = []
    for action, row in MATRIX.items():
        if Role.public in row:
            continue
        theirs = grant(grantee, action)
        if theirs is None:
            continue
        mine = grant(actor, action)
        if mine is None or not _covers(actor, mine, grantee, theirs):
            beyond.append(action.value)
    if not beyond:
        return []
    return [
        FieldIssue(
            "roles",
            f"this grant allows {', '.join(beyond)}, beyond what your own credential allows",
        )
    ]


def outlives_caller(actor: Principal, expires_at: datetime | None) -> list[FieldIssue]:
    """Whether a grant ending at ``expires_at`` (None: never) outlives ``actor``.

    A credential that expires by design (an API key with ``expires_at``)
    must not hand out one that lasts longer: a key given to a contractor
    until tomorrow would otherwise mint itself a successor that never ends.
    Refused, not capped: a key silently shortened would stop working before
    its creator expects, and the 201 would not say so. Callers that do not
    expire (bootstrap, command line, unexpiring keys, agents: their OIDC token
    is a session, the grant is their mapping) are never refused. The grant may
    end with the caller's credential, not after.
    """
    mine = actor.expires_at
    if mine is None or (expires_at is not None and expires_at <= mine):
        return []
    theirs = "never expires" if expires_at is None else f"expires at {expires_at.isoformat()}"
    return [
        FieldIssue(
            "expires_at",
            f"this grant {theirs}, after your own credential (it expires at {mine.isoformat()})",
        )
    ]


# --- API keys -------------------------------------------------------------------


class ApiKeyCreate(Strict):
    name: KeyName
    owner: Owner
    roles: list[Role] = Field(min_length=1, max_length=MAX_ROLES)
    scopes: list[Action] = Field(
        default_factory=list,
        max_length=len(Action),
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

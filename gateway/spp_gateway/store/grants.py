"""What a grant of roles may be, and who may hand it out.

Plain functions the store applies to the API and the command line alike; it
turns their issues into a 422 (:func:`grant_issues`) or a 403
``grant-beyond-caller`` (:func:`escalation_issues`, :func:`outlives_caller`)
naming the field. They walk the platform's whole matrix
(``spp_shared.contracts.access.ACTIONS``): a credential the gateway issues
reaches every service.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

from spp_shared.contracts.access import ACTIONS, API_KEY_ROLES
from spp_shared.contracts.permissions import WIDTH, Role, Scope
from spp_shared.kit.identity import Principal, PrincipalKind
from spp_shared.kit.permissions import grant


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
        action = ACTIONS.get(scope)
        if action is None:
            issues.append(FieldIssue("scopes", f"'{scope}' is not an action of the platform"))
            continue
        row = action.grants
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
    for action in ACTIONS.values():
        if Role.public in action.grants:
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

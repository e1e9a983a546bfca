"""The permission matrix: who may do what, and how far it reaches.

Written once, as data: :data:`MATRIX` maps each action to the roles that may
perform it and the scope of the grant (every object, the caller's network,
the caller's own sites, the caller's own submission). Every endpoint of every
service declares the action it performs with :func:`allowed`; the route-level
check happens there, and the service finishes the job at the object with
:meth:`Access.ensure` (a CAF manager holds ``sites:update`` at network scope,
which reaches CAF sites and no others). docs/permissions.md is rendered from
this table by :func:`render_markdown`, and a test walks every cell of it
against the running API.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fastapi import Depends
from fastapi.routing import APIRoute

from spp_shared.kit.errors import Forbidden, Unauthorized
from spp_shared.kit.identity import Principal, PrincipalDep, Role


class Action(StrEnum):
    """Everything a caller can ask of the platform (``resource:verb``)."""

    networks_read = "networks:read"
    networks_create = "networks:create"
    networks_update = "networks:update"
    sites_read = "sites:read"
    sites_lookup = "sites:lookup"
    sites_create = "sites:create"
    sites_update = "sites:update"
    sites_close = "sites:close"
    sites_import = "sites:import"
    commitments_read = "commitments:read"
    api_keys_manage = "api-keys:manage"
    agent_mappings_manage = "agent-mappings:manage"
    audit_read = "audit:read"
    jobs_read = "jobs:read"


class Scope(StrEnum):
    """How far a grant reaches, widest first."""

    any = "any"
    network = "network"
    site = "site"
    own = "own"


# How far each scope reaches, for comparing grants.
WIDTH = {Scope.any: 3, Scope.network: 2, Scope.site: 1, Scope.own: 0}

# The roles a programme actor can hold; ``public`` is everyone, signed in or not.
ROLES: tuple[Role, ...] = (
    Role.public,
    Role.citizen_author,
    Role.agent,
    Role.network_manager,
    Role.moderator,
    Role.certifier,
    Role.programme_admin,
    Role.service,
)

_ADMIN = {Role.programme_admin: Scope.any}
_SIGNED_IN = {
    Role.agent: Scope.any,
    Role.network_manager: Scope.any,
    Role.moderator: Scope.any,
    Role.certifier: Scope.any,
    Role.programme_admin: Scope.any,
    Role.service: Scope.any,
}

MATRIX: Mapping[Action, Mapping[Role, Scope]] = {
    Action.networks_read: {Role.public: Scope.any},
    Action.networks_create: _ADMIN,
    Action.networks_update: _ADMIN,
    Action.sites_read: {Role.public: Scope.any},
    # Up to 10,000 keys per call: for the platform's services and signed-in
    # callers, not for anonymous scraping.
    Action.sites_lookup: _SIGNED_IN,
    Action.sites_create: {Role.network_manager: Scope.network, Role.programme_admin: Scope.any},
    Action.sites_update: {
        Role.agent: Scope.site,
        Role.network_manager: Scope.network,
        Role.programme_admin: Scope.any,
    },
    Action.sites_close: {Role.network_manager: Scope.network, Role.programme_admin: Scope.any},
    Action.sites_import: {Role.network_manager: Scope.network, Role.programme_admin: Scope.any},
    Action.commitments_read: {Role.public: Scope.any},
    Action.api_keys_manage: _ADMIN,
    Action.agent_mappings_manage: _ADMIN,
    Action.audit_read: _ADMIN,
    Action.jobs_read: _ADMIN,
}

DESCRIPTIONS: Mapping[Action, str] = {
    Action.networks_read: "list and read networks",
    Action.networks_create: "create a network",
    Action.networks_update: "change a network",
    Action.sites_read: "list, search and read sites",
    Action.sites_lookup: "bulk look-up of sites",
    Action.sites_create: "create a site (SP+ code: programme admins only)",
    Action.sites_update: (
        "change a site (agents: hours, contact, accessibility only; "
        "SP+ code: programme admins only)"
    ),
    Action.sites_close: "close or reopen a site",
    Action.sites_import: (
        "bulk import sites (rows of other networks are rejected; SP+ codes: programme admins only)"
    ),
    Action.commitments_read: "read the eight commitments",
    Action.api_keys_manage: "create, list, rotate and revoke API keys",
    Action.agent_mappings_manage: "grant agents their network, sites and roles",
    Action.audit_read: "read the audit log",
    Action.jobs_read: "read a service's background jobs (failed ones kept for review)",
}


def grant(principal: Principal, action: Action) -> Scope | None:
    """The widest scope ``principal`` holds for ``action``, or ``None``.

    Public grants hold for everyone. Other grants come from the caller's
    roles, narrowed by its scopes when it has any (an API key created for
    ``sites:import`` only cannot close sites even if its role could).
    """
    row = MATRIX[action]
    public = row.get(Role.public)
    if public is not None:
        return public
    if principal.scopes and action.value not in principal.scopes:
        return None
    best: Scope | None = None
    for role in principal.roles:
        scope = row.get(role)
        if scope is not None and (best is None or WIDTH[scope] > WIDTH[best]):
            best = scope
    return best


@dataclass(frozen=True, slots=True)
class Access:
    """A granted action: who, what, and how far it reaches."""

    principal: Principal
    action: Action
    scope: Scope

    def reaches(self, *, network: str | None, site_keys: Iterable[str | None] = ()) -> bool:
        """Whether the grant covers an object of ``network`` known by ``site_keys``.

        Site scope: one of the caller's sites, or, for a caller given a whole
        network and no site list, any site of that network.
        """
        if self.scope is Scope.any:
            return True
        principal = self.principal
        if self.scope is Scope.network:
            return principal.network is not None and principal.network == network
        if self.scope is Scope.site:
            if principal.sites:
                return any(k is not None and k in principal.sites for k in site_keys)
            return principal.network is not None and principal.network == network
        return False  # own: the service checks the submission's private token

    def ensure(
        self, *, network: str | None, site_keys: Iterable[str | None] = (), what: str
    ) -> None:
        """Raise 403 unless the grant reaches the object described by ``what``."""
        if not self.reaches(network=network, site_keys=site_keys):
            raise Forbidden(f"You may not {DESCRIPTIONS[self.action]} for {what}.")


def authorize(principal: Principal, action: Action) -> Access:
    """The route-level check: 401 for anonymous callers, 403 for the rest."""
    scope = grant(principal, action)
    if scope is not None:
        return Access(principal, action, scope)
    if principal.is_anonymous:
        raise Unauthorized(f"'{action.value}' needs an authenticated caller.")
    narrowed = principal.scopes and action.value not in principal.scopes
    if narrowed and _roles_grant(principal, action):
        raise Forbidden(f"Your credential's scopes do not include '{action.value}'.")
    raise Forbidden(f"Your roles do not allow '{action.value}'.")


def _roles_grant(principal: Principal, action: Action) -> bool:
    return any(role in MATRIX[action] for role in principal.roles)


Requirement = Callable[[Principal], Coroutine[Any, Any, Access]]
_REQUIREMENTS: dict[Action, Requirement] = {}
_ACTION_OF: dict[Requirement, Action] = {}


def requirement(action: Action) -> Requirement:
    """The dependency checking ``action`` (one per action, so routes can be audited)."""
    found = _REQUIREMENTS.get(action)
    if found is None:

        async def dependency(principal: PrincipalDep) -> Access:
            return authorize(principal, action)

        dependency.__name__ = f"require_{action.name}"
        _REQUIREMENTS[action] = found = dependency
        _ACTION_OF[dependency] = action
    return found


def allowed(action: Action) -> Any:
    """``Depends`` marker declaring the action an endpoint performs.

    As a parameter (``access: Annotated[Access, allowed(Action.sites_update)]``)
    when the service checks the object, or in the decorator's
    ``dependencies=[allowed(...)]`` for actions granted whole.
    """
    return Depends(requirement(action))


def declared_actions(route: APIRoute) -> list[Action]:
    """The actions ``route`` declares (the matrix test wants exactly one)."""
    found: list[Action] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        action = _ACTION_OF.get(dep.call) if dep.call is not None else None
        if action is not None:
            found.append(action)
        stack.extend(dep.dependencies)
    return found


def api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """Every endpoint under ``routes`` (an app's), looking inside included routers."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from api_routes(inner.routes)
        elif isinstance(route, APIRoute):
            yield route


def render_markdown() -> str:
    """docs/permissions.md's table: one row per action, one column per role."""
    header = "| action | what it allows | " + " | ".join(r.value for r in ROLES) + " |"
    rule = "| --- | --- | " + " | ".join("---" for _ in ROLES) + " |"
    lines = [header, rule]
    for action in Action:
        row = MATRIX[action]
        public = row.get(Role.public)
        cells = []
        for role in ROLES:
            scope = public if public is not None else row.get(role)
            cells.append(scope.value if scope is not None else "·")
        lines.append(f"| `{action.value}` | {DESCRIPTIONS[action]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def iter_cells() -> Iterator[tuple[Action, Role, Scope | None]]:
    """Every (action, role) cell with its scope, for the tests that walk the matrix."""
    for action in Action:
        row = MATRIX[action]
        public = row.get(Role.public)
        for role in ROLES:
            yield action, role, public if public is not None else row.get(role)

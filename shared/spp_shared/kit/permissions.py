"""The check of the permission matrix: who may do what, and how far it reaches.

The matrix is data that each service owns: its actions, each carrying the
roles granted it and the scope of the grant (every object, the caller's
network, the caller's own sites, the caller's own submission), are an
:class:`~spp_shared.contracts.permissions.Action` enum in its contract
module. Here are the mechanics, the same for every service: every endpoint
declares the action it performs with :func:`allowed`; the route-level check
happens there, and the service finishes the job at the object with
:meth:`Access.ensure` (a CAF manager holds ``sites:update`` at network scope,
which reaches CAF sites and no others). docs/permissions.md is rendered from
the platform's actions by :func:`render_markdown`, and a test walks every
cell against the running API.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import Depends
from fastapi.routing import APIRoute

from spp_shared.contracts.permissions import ROLES, WIDTH, Action, Role, Scope
from spp_shared.kit.errors import Forbidden, Unauthorized
from spp_shared.kit.identity import Principal, PrincipalDep


def grant(principal: Principal, action: Action) -> Scope | None:
    """The widest scope ``principal`` holds for ``action``, or ``None``.

    Public grants hold for everyone. Other grants come from the caller's
    roles, narrowed by its scopes when it has any (an API key created for
    ``sites:import`` only cannot close sites even if its role could).
    """
    row = action.grants
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
            raise Forbidden(f"You may not {self.action.description} for {what}.")


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
    return any(role in action.grants for role in principal.roles)


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

    As a parameter (``access: Annotated[Access, allowed(SitesAction.sites_update)]``)
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


def render_markdown(actions: Iterable[Action]) -> str:
    """docs/permissions.md's table: one row per action, one column per role."""
    header = "| action | what it allows | " + " | ".join(r.value for r in ROLES) + " |"
    rule = "| --- | --- | " + " | ".join("---" for _ in ROLES) + " |"
    lines = [header, rule]
    for action in actions:
        cells = [scope.value if scope is not None else "·" for _, scope in _row(action)]
        lines.append(f"| `{action.value}` | {action.description} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def iter_cells(actions: Iterable[Action]) -> Iterator[tuple[Action, Role, Scope | None]]:
    """Every (action, role) cell with its scope, for the tests that walk the matrix."""
    for action in actions:
        for role, scope in _row(action):
            yield action, role, scope


def _row(action: Action) -> Iterator[tuple[Role, Scope | None]]:
    """Each role's scope for ``action``: a public grant holds for every role."""
    public = action.grants.get(Role.public)
    for role in ROLES:
        yield role, public if public is not None else action.grants.get(role)

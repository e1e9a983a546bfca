"""Who may change what in the registry (checked at the object)."""

from __future__ import annotations

from spp_shared.kit.errors import Forbidden, Unauthorized
from spp_shared.kit.identity import Principal, Role


def ensure_authenticated(principal: Principal) -> None:
    if principal.is_anonymous:
        raise Unauthorized("This operation needs an authenticated caller.")


def ensure_admin(principal: Principal) -> None:
    ensure_authenticated(principal)
    if not principal.is_admin:
        raise Forbidden("Only programme admins may do this.")


def can_manage_network(principal: Principal, network: str) -> bool:
    if principal.is_admin:
        return True
    return principal.has_role(Role.network_manager) and principal.network == network


def ensure_can_manage_network(principal: Principal, network: str) -> None:
    ensure_authenticated(principal)
    if not can_manage_network(principal, network):
        raise Forbidden(f"You may not manage sites of the network '{network}'.")

"""The registry's own rules on top of the platform's permission matrix.

The registry's rows of the matrix (``SitesAction`` in its contract,
spp_shared.contracts.sites) say who may perform an action and how far the
grant reaches; this module adds what only the registry knows:
which fields a grant may set (an agent: the practical information of their
own site; a network key: anything but the SP+ code), and whether a grant
reaches a network named in an import row.
"""

from __future__ import annotations

from collections.abc import Iterable

from spp_shared.contracts.permissions import Scope
from spp_shared.contracts.sites import SitesAction
from spp_shared.kit.errors import Forbidden
from spp_shared.kit.identity import Principal
from spp_shared.kit.permissions import Access, grant

# An agent keeps the practical information of their own site up to date;
# identity, network, codes and geography belong to the head office.
AGENT_FIELDS = frozenset({"opening_hours", "contact", "accessibility"})
# SP+ structure codes come from the programme's export: only a grant over
# every network (programme admins) sets, changes or clears one, so a network
# key cannot claim a code the registry does not hold yet (ADR 0016).
PROGRAMME_FIELDS = frozenset({"sp_code"})


def may_reach(principal: Principal, action: SitesAction, network: str) -> bool:
    scope = grant(principal, action)
    return scope is not None and Access(principal, action, scope).reaches(network=network)


def may_create_networks(principal: Principal) -> bool:
    return grant(principal, SitesAction.networks_create) is not None


def refused_fields(access: Access, fields: Iterable[str]) -> list[str]:
    """The fields among ``fields`` this grant may not set, sorted."""
    if access.scope is Scope.any:
        return []
    if access.scope is Scope.site:
        return sorted(set(fields) - AGENT_FIELDS)
    return sorted(set(fields) & PROGRAMME_FIELDS)


def refusal(access: Access, refused: Iterable[str]) -> str:
    """Why ``refused`` (from :func:`refused_fields`) are not this caller's to set."""
    names = ", ".join(refused)
    if access.scope is Scope.site:
        return (
            f"Agents may change only {', '.join(sorted(AGENT_FIELDS))} of their site; "
            f"refused: {names}."
        )
    return (
        "Only programme admins set SP+ structure codes (they come from the programme's "
        f"export); refused: {names}."
    )


def ensure_settable(access: Access, fields: Iterable[str]) -> None:
    """Refuse, naming them, the fields this caller may not set (no mass assignment)."""
    refused = refused_fields(access, fields)
    if refused:
        raise Forbidden(
            refusal(access, refused),
            errors=[
                {"location": "body", "field": f, "reason": "not yours to set"} for f in refused
            ],
        )

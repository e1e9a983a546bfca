"""The registry's own rules on top of the platform's permission matrix.

The matrix (spp_shared.kit.permissions) says who may perform an action and
how far the grant reaches; this module adds what only the registry knows:
which fields an agent may change on their own site, and whether a grant
reaches a network named in an import row.
"""

from __future__ import annotations

from collections.abc import Iterable

from spp_shared.kit.errors import Forbidden
from spp_shared.kit.identity import Principal
from spp_shared.kit.permissions import Access, Action, Scope, grant

# An agent keeps the practical information of their own site up to date;
# identity, network, codes and geography belong to the head office.
AGENT_FIELDS = frozenset({"opening_hours", "contact", "accessibility"})


def may_reach(principal: Principal, action: Action, network: str) -> bool:
    scope = grant(principal, action)
    return scope is not None and Access(principal, action, scope).reaches(network=network)


def may_create_networks(principal: Principal) -> bool:
    return grant(principal, Action.networks_create) is not None


def ensure_settable(access: Access, fields: Iterable[str]) -> None:
    """Refuse, naming them, the fields this caller may not set (no mass assignment)."""
    if access.scope is not Scope.site:
        return
    refused = sorted(set(fields) - AGENT_FIELDS)
    if refused:
        raise Forbidden(
            f"Agents may change only {', '.join(sorted(AGENT_FIELDS))} of their site; "
            f"refused: {', '.join(refused)}.",
            errors=[
                {"location": "body", "field": f, "reason": "not yours to set"} for f in refused
            ],
        )

"""Domain errors of the gateway's credential store (problem+json via the kit)."""

from __future__ import annotations

from spp_gateway.store.grants import FieldIssue
from spp_shared.kit.errors import Conflict, Forbidden, NotFound, ValidationProblem


class StoreUnavailable(Exception):
    """The credential database could not be read: the gateway answers 503.

    Raised instead of the driver's error so the request path catches one
    type, and never from a database error's text (which may quote values).
    """


class ApiKeyNotFound(NotFound):
    type_ = "api-key-not-found"
    title = "API key not found"


class ApiKeyRevoked(Conflict):
    type_ = "api-key-revoked"
    title = "The API key is revoked"


class AgentMappingNotFound(NotFound):
    type_ = "agent-mapping-not-found"
    title = "Agent mapping not found"


class DuplicateAgentMapping(Conflict):
    type_ = "duplicate-agent-mapping"
    title = "A mapping for this match and value already exists"


class InvalidGrant(ValidationProblem):
    type_ = "invalid-grant"
    title = "The roles, scopes, network or sites do not fit together"

    @classmethod
    def of(cls, issues: list[FieldIssue]) -> InvalidGrant:
        fields = ", ".join(sorted({i.field for i in issues}))
        return cls(
            f"Invalid fields: {fields}",
            errors=[{"location": "body", "field": i.field, "reason": i.reason} for i in issues],
        )


class GrantBeyondCaller(Forbidden):
    """A credential narrowed by scopes tried to hand out one that reaches further."""

    type_ = "grant-beyond-caller"
    title = "The grant reaches beyond your own credential"

    @classmethod
    def of(
        cls, issues: list[FieldIssue], *, what: str, location: str = "body"
    ) -> GrantBeyondCaller:
        """``location``: ``body`` for a grant the request asks for, ``path`` for
        the existing key or mapping the path names."""
        return cls(
            f"Your credential may not {what}: " + "; ".join(i.reason for i in issues) + ".",
            errors=[{"location": location, "field": i.field, "reason": i.reason} for i in issues],
        )

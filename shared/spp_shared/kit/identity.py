"""The internal identity assertion the gateway signs and services verify.

The gateway authenticates the caller, then sends a short-lived JWT (HS256
with the platform's assertion key) in the ``X-SPP-Assertion`` header. A
service never trusts anything else about who is calling. Every request to a
service path must carry a valid assertion (anonymous callers get one too,
with kind ``anonymous``): :class:`AssertionGuard` refuses the rest with 401,
so reaching a service directly, around the gateway, bypasses nothing.
"""

from __future__ import annotations

import time
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from spp_shared.contracts.permissions import Role
from spp_shared.kit.errors import Unauthorized, send_problem_response

ASSERTION_HEADER = "x-spp-assertion"
ISSUER = "spp-gateway"
AUDIENCE = "spp-services"
ALGORITHM = "HS256"
DEFAULT_TTL_SECONDS = 60


class PrincipalKind(StrEnum):
    anonymous = "anonymous"
    api_key = "api_key"
    agent = "agent"
    service = "service"
    bootstrap = "bootstrap"


class Principal(BaseModel):
    """Who is calling, as the gateway established it."""

    subject: str = "anonymous"
    kind: PrincipalKind = PrincipalKind.anonymous
    roles: list[Role] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=list)
    network: str | None = None
    sites: list[str] = Field(default_factory=list)
    request_id: str | None = None
    # When the credential stops working by design (an API key with an expiry);
    # None: it does not (bootstrap, command line, unexpiring keys, agents, whose
    # OIDC token is a session, not the grant). The gateway's own business (what
    # a caller may hand out): never part of the assertion services receive.
    expires_at: datetime | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.kind is PrincipalKind.anonymous

    def has_role(self, *roles: Role) -> bool:
        return any(r in self.roles for r in roles)


ANONYMOUS = Principal()


def sign_assertion(
    principal: Principal, key: str, *, ttl: int = DEFAULT_TTL_SECONDS, now: float | None = None
) -> str:
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": issued,
        "exp": issued + ttl,
        "sub": principal.subject,
        "kind": principal.kind.value,
        "roles": [r.value for r in principal.roles],
        "scopes": principal.scopes,
        "network": principal.network,
        "sites": principal.sites,
        "rid": principal.request_id,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


class InvalidAssertion(Unauthorized):
    type_ = "invalid-assertion"
    title = "Invalid identity assertion"


def verify_assertion(token: str, key: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidAssertion("The identity assertion has expired.") from exc
    except jwt.PyJWTError as exc:
        raise InvalidAssertion("The identity assertion could not be verified.") from exc
    try:
        return Principal(
            subject=claims["sub"],
            kind=PrincipalKind(claims.get("kind", "anonymous")),
            roles=[Role(r) for r in claims.get("roles", [])],
            scopes=list(claims.get("scopes", [])),
            network=claims.get("network"),
            sites=list(claims.get("sites", [])),
            request_id=claims.get("rid"),
        )
    except (ValueError, TypeError) as exc:
        raise InvalidAssertion("The identity assertion carries unknown values.") from exc


# Operations endpoints answer without an assertion: probes and scrapers do
# not go through the gateway, and the API description is public.
EXEMPT_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
PRINCIPAL_STATE = "principal"


class AssertionGuard:
    """Verifies the assertion of every request before any route runs.

    Putting the check in front of the router, not in each endpoint, means an
    endpoint that forgets to ask who is calling is still unreachable without
    the gateway. The verified principal is left in the request state.
    """

    def __init__(self, app: ASGIApp, *, key: str, exempt: frozenset[str] = EXEMPT_PATHS) -> None:
        self.app = app
        self.key = key
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        token: bytes | None = None
        for name, value in scope["headers"]:
            if name == _ASSERTION_BYTES:
                token = value
                break
        try:
            if token is None:
                raise MissingAssertion(
                    "Call the platform through the gateway: this request carries no "
                    "identity assertion."
                )
            principal = verify_assertion(token.decode("latin-1"), self.key)
        except Unauthorized as exc:
            await _refuse(send, exc, scope)
            return
        scope.setdefault("state", {})[PRINCIPAL_STATE] = principal
        await self.app(scope, receive, send)


_ASSERTION_BYTES = ASSERTION_HEADER.encode()


class MissingAssertion(Unauthorized):
    type_ = "missing-assertion"
    title = "Missing identity assertion"


async def _refuse(send: Send, exc: Unauthorized, scope: Scope) -> None:
    body = exc.to_body(instance=scope["path"])
    state = scope.get("state") or {}
    body["request_id"] = state.get("request_id")
    await send_problem_response(send, body)


async def get_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller :class:`AssertionGuard` (or the gateway) verified."""
    principal = request.scope.get("state", {}).get(PRINCIPAL_STATE)
    if not isinstance(principal, Principal):
        raise MissingAssertion("This request carries no verified identity.")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]

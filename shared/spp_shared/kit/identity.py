"""The internal identity assertion the gateway signs and services verify.

The gateway authenticates the caller, then sends a short-lived JWT (HS256
with the platform's assertion key) in the ``X-SPP-Assertion`` header. A
service never trusts anything else about who is calling: a request without a
valid assertion is anonymous, and a request with a forged or expired one is
refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from pydantic import BaseModel, Field

from spp_shared.kit.errors import Forbidden, Unauthorized

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


class Role(StrEnum):
    public = "public"
    citizen_author = "citizen_author"
    agent = "agent"
    network_manager = "network_manager"
    moderator = "moderator"
    certifier = "certifier"
    programme_admin = "programme_admin"
    service = "service"


class Principal(BaseModel):
    """Who is calling, as the gateway established it."""

    subject: str = "anonymous"
    kind: PrincipalKind = PrincipalKind.anonymous
    roles: list[Role] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=list)
    network: str | None = None
    sites: list[str] = Field(default_factory=list)
    request_id: str | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.kind is PrincipalKind.anonymous

    def has_role(self, *roles: Role) -> bool:
        return any(r in self.roles for r in roles)

    @property
    def is_admin(self) -> bool:
        return Role.programme_admin in self.roles


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


async def get_principal(request: Request) -> Principal:
    """FastAPI dependency: the verified caller, or the anonymous principal."""
    token = request.headers.get(ASSERTION_HEADER)
    if not token:
        return ANONYMOUS
    key: str = request.app.state.assertion_key
    return verify_assertion(token, key)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """Dependency factory: the caller must hold one of ``roles``."""

    async def dependency(principal: PrincipalDep) -> Principal:
        if principal.is_anonymous:
            raise Unauthorized("This operation needs an authenticated caller.")
        if not principal.has_role(*roles):
            wanted = ", ".join(r.value for r in roles)
            raise Forbidden(f"This operation needs one of the roles: {wanted}.")
        return principal

    return dependency


AdminDep = Annotated[Principal, Depends(require_roles(Role.programme_admin))]

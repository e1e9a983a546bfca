"""The internal identity assertion the gateway signs and services verify.

The gateway authenticates the caller, then sends a short-lived JWT (ES256,
signed with the gateway's own private key) in the ``X-SPP-Assertion``
header. A service never trusts anything else about who is calling. Every
request to a service path must carry a valid assertion (anonymous callers
get one too, with kind ``anonymous``): :class:`AssertionGuard` refuses the
rest with 401, so reaching a service directly, around the gateway, bypasses
nothing.

Services verify with public keys only. A service also holds a private key
of its own, for its own calls to the others (:class:`ServiceSigner`); the
others take from that key its ``service`` identity and nothing more, so a
compromised service cannot pose as an admin or an agent anywhere else.
Each assertion names the method and path of its request and its request
id: a captured one replays for nothing else (ADR 0002).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from fastapi import Depends, Request
from jwt.algorithms import ECAlgorithm
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from spp_shared.contracts.permissions import Role
from spp_shared.kit.errors import Unauthorized, send_problem_response
from spp_shared.kit.keys import ALGORITHM, issuer, key_id, load_private_key, load_public_keys

ASSERTION_HEADER = "x-spp-assertion"
GATEWAY_ISSUER = issuer("gateway")
AUDIENCE = "spp-services"
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


def service_issuer(service: str) -> str:
    """The issuer a service signs as: ``spp-feedback`` for ``feedback``."""
    return issuer(service)


def service_principal(service: str) -> Principal:
    """The one identity a service's own key may assert."""
    return Principal(subject=service, kind=PrincipalKind.service, roles=[Role.service])


_ALGORITHM = ECAlgorithm(ECAlgorithm.SHA256, SECP256R1)


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def _unb64(segment: bytes) -> bytes:
    """Strict base64url: a character outside the alphabet is an error, not skipped."""
    try:
        return binascii.a2b_base64(
            segment.translate(_TO_STANDARD) + b"=" * (-len(segment) % 4), strict_mode=True
        )
    except binascii.Error as exc:
        raise InvalidAssertion("The identity assertion is not a JWT.") from exc


class AssertionSigner:
    """Signs assertions with one private key, as one issuer.

    The gateway's signs every caller's; a service's is wrapped in
    :class:`ServiceSigner`, which only ever signs that service's own identity.
    The key is loaded once and the header (algorithm, key id) encoded once:
    a signature then costs the ECDSA operation, one JSON dump and base64.
    Every assertion is bound to one request: its method, its path (as the
    receiving service sees it) and its request id.
    """

    __slots__ = ("_header", "_key", "issuer", "kid", "ttl")

    def __init__(
        self, issuer: str, private_key_pem: str, *, setting: str, ttl: int = DEFAULT_TTL_SECONDS
    ) -> None:
        self._key = load_private_key(private_key_pem, setting)
        self.issuer = issuer
        self.kid = key_id(self._key)
        self.ttl = ttl
        header = {"alg": ALGORITHM, "kid": self.kid, "typ": "JWT"}
        self._header = _b64(orjson.dumps(header)) + b"."

    def sign(
        self,
        principal: Principal,
        *,
        method: str,
        path: str,
        request_id: str | None = None,
        ttl: int | None = None,
        now: float | None = None,
    ) -> str:
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "iat": issued,
            "exp": issued + (self.ttl if ttl is None else ttl),
            "sub": principal.subject,
            "kind": principal.kind.value,
            "roles": [r.value for r in principal.roles],
            "scopes": principal.scopes,
            "network": principal.network,
            "sites": principal.sites,
            "rid": request_id if request_id is not None else principal.request_id,
            "method": method,
            "path": path,
        }
        signing_input = self._header + _b64(orjson.dumps(claims))
        signature = _ALGORITHM.sign(signing_input, self._key)
        return (signing_input + b"." + _b64(signature)).decode("ascii")


class ServiceSigner:
    """A service's own key: it signs the service's own ``service`` identity,
    nothing else (and the other services would accept nothing else from it)."""

    __slots__ = ("_signer", "principal")

    def __init__(self, service: str, private_key_pem: str, *, setting: str) -> None:
        self.principal = service_principal(service)
        self._signer = AssertionSigner(service_issuer(service), private_key_pem, setting=setting)

    @property
    def kid(self) -> str:
        return self._signer.kid

    def sign(self, *, method: str, path: str, request_id: str | None = None) -> str:
        return self._signer.sign(self.principal, method=method, path=path, request_id=request_id)


class InvalidAssertion(Unauthorized):
    type_ = "invalid-assertion"
    title = "Invalid identity assertion"


# Clocks of two hosts differ a little: an assertion issued "in the future" by
# this much is still taken (its expiry is not stretched).
CLOCK_SKEW_SECONDS = 5
_HEADER_CACHE_SIZE = 16
_SERVICE_CLAIMS = {"kind": "service", "roles": ["service"], "scopes": [], "network": None}


class AssertionVerifier:
    """Verifies assertions with public keys only, the key picked by ``kid``.

    ``public_keys`` is ``{issuer: [PEM, ...]}``: several keys per issuer are
    taken at once, so a key rotates by listing the new one everywhere, then
    signing with it, then removing the old one. What an issuer may assert:
    the gateway (:data:`GATEWAY_ISSUER`), any principal; a service
    (``spp-<name>``), only its own ``service`` identity.
    """

    def __init__(self, public_keys: Mapping[str, Sequence[str]], *, setting: str) -> None:
        self._keys = load_public_keys(public_keys, setting)
        # encoded header -> (issuer, key): a signer's header never changes, so
        # after its first token the header is one dict look-up, not a parse.
        self._headers: dict[bytes, tuple[str, EllipticCurvePublicKey]] = {}

    @property
    def issuers(self) -> frozenset[str]:
        return frozenset(issuer for issuer, _ in self._keys.values())

    def trusts(self, issuer: str, kid: str) -> bool:
        known = self._keys.get(kid)
        return known is not None and known[0] == issuer

    def verify(
        self,
        token: str | bytes,
        *,
        method: str,
        path: str,
        request_id: str | None = None,
        now: float | None = None,
    ) -> Principal:
        """The principal of ``token``, checked against the request it came with.

        ``request_id`` is the request's own X-Request-ID, when it has one.
        Raises :class:`InvalidAssertion` (401).
        """
        raw = token.encode("latin-1") if isinstance(token, str) else token
        if raw.count(b".") != 2:
            raise InvalidAssertion("The identity assertion is not a JWT.")
        signing_input, _, signature = raw.rpartition(b".")
        header, _, payload = signing_input.partition(b".")
        issuer, key = self._key_for(header)
        if not _ALGORITHM.verify(signing_input, key, _unb64(signature)):
            raise InvalidAssertion("The identity assertion could not be verified.")
        try:
            claims = orjson.loads(_unb64(payload))
        except orjson.JSONDecodeError as exc:
            raise InvalidAssertion("The identity assertion could not be read.") from exc
        if not isinstance(claims, dict):
            raise InvalidAssertion("The identity assertion could not be read.")
        _check_times(claims, time.time() if now is None else now)
        if claims.get("iss") != issuer or claims.get("aud") != AUDIENCE:
            raise InvalidAssertion("The identity assertion is not meant for this platform.")
        if claims.get("method") != method or claims.get("path") != path:
            raise InvalidAssertion("The identity assertion was issued for another request.")
        rid = claims.get("rid")
        if request_id is not None and rid != request_id:
            raise InvalidAssertion("The identity assertion was issued for another request.")
        if issuer != GATEWAY_ISSUER and not _is_own_service_identity(issuer, claims):
            raise InvalidAssertion(
                "A service's key vouches for that service's own identity, nothing else."
            )
        try:
            return Principal(
                subject=claims["sub"],
                kind=PrincipalKind(claims.get("kind", "anonymous")),
                roles=[Role(r) for r in claims.get("roles", [])],
                scopes=list(claims.get("scopes", [])),
                network=claims.get("network"),
                sites=list(claims.get("sites", [])),
                request_id=rid,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidAssertion("The identity assertion carries unknown values.") from exc

    def _key_for(self, header: bytes) -> tuple[str, EllipticCurvePublicKey]:
        known = self._headers.get(header)
        if known is not None:
            return known
        try:
            fields = orjson.loads(_unb64(header))
        except orjson.JSONDecodeError as exc:
            raise InvalidAssertion("The identity assertion is not a JWT.") from exc
        # Exactly what our signers write: no other algorithm, no "crit", no
        # embedded key or key URL to be tempted by.
        if (
            not isinstance(fields, dict)
            or fields.get("alg") != ALGORITHM
            or not isinstance(fields.get("kid"), str)
            or not set(fields) <= {"alg", "kid", "typ"}
        ):
            raise InvalidAssertion(f"The identity assertion must be {ALGORITHM} with a key id.")
        found = self._keys.get(fields["kid"])
        if found is None:
            raise InvalidAssertion(
                "The identity assertion is signed with a key this service does not know."
            )
        if len(self._headers) < _HEADER_CACHE_SIZE:
            self._headers[header] = found
        return found


def _check_times(claims: dict[str, Any], now: float) -> None:
    issued, expires = claims.get("iat"), claims.get("exp")
    if type(issued) is not int or type(expires) is not int:
        raise InvalidAssertion("The identity assertion has no valid lifetime.")
    if now >= expires:
        raise InvalidAssertion("The identity assertion has expired.")
    if issued > now + CLOCK_SKEW_SECONDS:
        raise InvalidAssertion("The identity assertion is issued in the future.")


def _is_own_service_identity(issuer: str, claims: dict[str, Any]) -> bool:
    subject = claims.get("sub")
    return (
        isinstance(subject, str)
        and service_issuer(subject) == issuer
        and all(claims.get(name) == value for name, value in _SERVICE_CLAIMS.items())
        and claims.get("sites") == []
    )


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

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: AssertionVerifier,
        exempt: frozenset[str] = EXEMPT_PATHS,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        token: bytes | None = None
        request_id: bytes | None = None
        for name, value in scope["headers"]:
            if name == _ASSERTION_BYTES:
                if token is None:
                    token = value
            elif name == _REQUEST_ID_BYTES and request_id is None:
                request_id = value
        try:
            if token is None:
                raise MissingAssertion(
                    "Call the platform through the gateway: this request carries no "
                    "identity assertion."
                )
            principal = self.verifier.verify(
                token,
                method=scope["method"],
                path=scope["path"],
                request_id=request_id.decode("latin-1") if request_id is not None else None,
            )
        except Unauthorized as exc:
            await _refuse(send, exc, scope)
            return
        scope.setdefault("state", {})[PRINCIPAL_STATE] = principal
        await self.app(scope, receive, send)


_ASSERTION_BYTES = ASSERTION_HEADER.encode()
_REQUEST_ID_BYTES = b"x-request-id"


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

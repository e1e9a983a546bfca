"""Who is calling: the gateway's authentication.

A caller is one of: anonymous (no credential), the bootstrap administrator
(``SPP_BOOTSTRAP_TOKEN``, for a fresh install), an API key (``spp_<id>_<secret>``
as ``Authorization: Bearer`` or ``X-API-Key``), or an agent signed in with an
OIDC provider such as ProConnect (a JWT as ``Authorization: Bearer``), whose
network, sites and roles come from the platform's agent mappings. Whatever
the caller sends, the services only ever see the assertion signed here.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Protocol

import aiohttp

from spp_gateway.oidc import InvalidToken, OidcUnavailable, OidcVerifier, looks_like_jwt
from spp_gateway.store.errors import StoreUnavailable
from spp_shared.contracts.permissions import Role
from spp_shared.kit.identity import ANONYMOUS, AssertionSigner, Principal, PrincipalKind

BOOTSTRAP_PRINCIPAL = Principal(
    subject="bootstrap-admin", kind=PrincipalKind.bootstrap, roles=[Role.programme_admin]
)
API_KEY_PREFIX = b"spp_"


class KeyLookup(Protocol):
    async def authenticate(self, presented: str) -> Principal | None: ...


class AgentLookup(Protocol):
    async def principal_for(
        self,
        *,
        subject: str,
        email: str | None,
        email_domain: str | None,
        siret: str | None,
        uid: str | None,
    ) -> Principal: ...


class InvalidCredentials(Exception):
    """The caller sent credentials the gateway does not accept (401).

    ``detail`` is safe to show: it never contains the credential.
    """

    def __init__(self, detail: str, *, error: str = "invalid_token") -> None:
        super().__init__(detail)
        self.detail = detail
        self.error = error


class AuthenticationUnavailable(Exception):
    """The OIDC provider's keys or the credential database cannot be read: 503,
    not the caller's fault."""


class Authenticator:
    """Resolves a request's credentials to a principal and signs assertions.

    Built once per process. API keys and agent mappings are looked up through
    caching stores, so a request costs a dict lookup and a hash, not a query.
    """

    def __init__(
        self,
        *,
        bootstrap_token: str | None,
        signer: AssertionSigner,
        keys: KeyLookup | None = None,
        agents: AgentLookup | None = None,
        oidc: OidcVerifier | None = None,
        session: Callable[[], aiohttp.ClientSession] | None = None,
    ) -> None:
        # Compared as digests: equal lengths, so the timing tells nothing of the token's.
        self._bootstrap = token_digest(bootstrap_token.encode()) if bootstrap_token else None
        self._signer = signer
        self._keys = keys
        self._agents = agents
        self._oidc = oidc
        self._session = session

    async def authenticate(self, authorization: bytes | None, api_key: bytes | None) -> Principal:
        """The caller; :data:`ANONYMOUS` without credentials.

        Raises :class:`InvalidCredentials` (401) or
        :class:`AuthenticationUnavailable` (503).
        """
        if authorization is None and api_key is None:
            return ANONYMOUS
        if authorization is not None and api_key is not None:
            raise InvalidCredentials(
                "Send one credential: Authorization or X-API-Key, not both.",
                error="invalid_request",
            )
        if api_key is not None:
            token = api_key.strip()
        else:
            assert authorization is not None
            scheme, _, token = authorization.strip().partition(b" ")
            token = token.strip()
            if scheme.lower() != b"bearer":
                raise InvalidCredentials(
                    "Use 'Authorization: Bearer <token>'.", error="invalid_request"
                )
        if not token:
            raise InvalidCredentials("The credential is empty.", error="invalid_request")
        if self._bootstrap is not None and hmac.compare_digest(
            token_digest(token), self._bootstrap
        ):
            return BOOTSTRAP_PRINCIPAL
        if token.startswith(API_KEY_PREFIX):
            return await self._api_key(token)
        if api_key is None and looks_like_jwt(token):
            return await self._agent(token)
        raise InvalidCredentials("The credential is not one this platform issued.")

    async def _api_key(self, token: bytes) -> Principal:
        principal = None
        if self._keys is not None:
            try:
                principal = await self._keys.authenticate(token.decode("latin-1"))
            except StoreUnavailable as exc:
                raise AuthenticationUnavailable("credential store") from exc
        if principal is None:
            raise InvalidCredentials("The API key is unknown, revoked or expired.")
        return principal

    async def _agent(self, token: bytes) -> Principal:
        if self._oidc is None or self._agents is None or self._session is None:
            raise InvalidCredentials("Agent sign-in (OIDC) is not configured on this platform.")
        try:
            identity = await self._oidc.verify(token.decode("latin-1"), self._session())
        except InvalidToken as exc:
            raise InvalidCredentials(f"The agent token is not valid ({exc.reason}).") from None
        except OidcUnavailable as exc:
            raise AuthenticationUnavailable("identity provider") from exc
        try:
            return await self._agents.principal_for(
                subject=identity.subject,
                email=identity.email,
                email_domain=identity.email_domain,
                siret=identity.siret,
                uid=identity.uid,
            )
        except StoreUnavailable as exc:
            raise AuthenticationUnavailable("credential store") from exc

    def assertion(self, principal: Principal, *, method: str, path: str, request_id: str) -> str:
        """The signed ``X-SPP-Assertion`` value for ``principal``, for this one
        request: its method, the path the service will see, its request id.

        Signed per request (no cache: a token bound to one request is not
        reused); the signer holds its key and header ready (bench/README.md).
        """
        return self._signer.sign(principal, method=method, path=path, request_id=request_id)


def token_digest(value: bytes) -> bytes:
    """What a secret token is compared as (constant length, so compare_digest leaks nothing)."""
    return hashlib.sha256(value).digest()


def rate_identity(principal: Principal, client_ip: str | None) -> str:
    """Whom a rate limit counts: the credential, or the client's address."""
    if principal.kind is PrincipalKind.anonymous:
        return f"ip:{client_ip or 'unknown'}"
    # Subjects already name their kind ("api_key:<id>", "agent:<sub>",
    # "bootstrap-admin"), and none starts with "ip:".
    return principal.subject

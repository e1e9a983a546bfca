"""Who is calling: the gateway's authentication, first part.

Today a caller is either anonymous (no ``Authorization``) or the bootstrap
administrator (``Authorization: Bearer $SPP_BOOTSTRAP_TOKEN``). API keys and
OIDC tokens plug in here later. Whatever the caller sends, the services only
ever see the assertion this module signs.
"""

from __future__ import annotations

import hmac
import time

from spp_shared.kit.identity import Principal, PrincipalKind, Role, sign_assertion

BOOTSTRAP_PRINCIPAL = Principal(
    subject="bootstrap-admin", kind=PrincipalKind.bootstrap, roles=[Role.programme_admin]
)


class InvalidCredentials(Exception):
    """The caller sent credentials the gateway does not accept."""


class Authenticator:
    """Resolves an ``Authorization`` header to a principal and signs assertions.

    Built once; per request it does one comparison and, when assertion
    caching is on, no signing at all (a signature costs ~20 µs, about 5% of
    the gateway's per-request budget).
    """

    __slots__ = ("_bootstrap", "_cache", "_cache_seconds", "_key")

    def __init__(
        self, *, bootstrap_token: str | None, assertion_key: str, cache_seconds: float = 0.0
    ) -> None:
        self._bootstrap = bootstrap_token.encode() if bootstrap_token else None
        self._key = assertion_key
        self._cache_seconds = cache_seconds
        # principal subject -> (signed at, token)
        self._cache: dict[str, tuple[float, bytes]] = {}

    def authenticate(self, authorization: bytes | None) -> Principal | None:
        """``None`` for an anonymous caller; raises :class:`InvalidCredentials`."""
        if authorization is None:
            return None
        scheme, _, token = authorization.strip().partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token:
            raise InvalidCredentials
        if self._bootstrap is not None and hmac.compare_digest(token, self._bootstrap):
            return BOOTSTRAP_PRINCIPAL
        raise InvalidCredentials

    def assertion(self, principal: Principal, request_id: str) -> bytes:
        """The signed ``X-SPP-Assertion`` value for ``principal``.

        With caching on, the token is reused for ``cache_seconds`` and holds no
        request id (a cached one would be stale); services read the id from
        ``X-Request-ID``. The token lives 60 s, far longer than the cache.
        """
        if self._cache_seconds <= 0:
            signed = principal.model_copy(update={"request_id": request_id})
            return sign_assertion(signed, self._key).encode("ascii")
        now = time.monotonic()
        cached = self._cache.get(principal.subject)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        token = sign_assertion(principal, self._key).encode("ascii")
        self._cache[principal.subject] = (now, token)
        return token

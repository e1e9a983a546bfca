"""Agents' OIDC tokens (ProConnect-compatible): verification against the provider's JWKS.

PyJWT does every cryptographic check; this module only finds the right key.
Keys are cached for ``jwks_cache_seconds``. A token signed with an unknown
``kid`` triggers a refetch, at most one per ``min_refresh_seconds`` and one at
a time however many requests wait on it, so tokens with random kids cannot
make the gateway hammer the provider. When a refetch fails the keys already
held keep serving (an outage of the provider's JWKS endpoint is not an
outage of agents' sign-in); with no keys at all, :class:`OidcUnavailable`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

from spp_shared.contracts.types import normalize_email

# Symmetric algorithms would let anyone holding the (public) JWKS forge tokens.
_ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_SIGNING_KTY = frozenset({"RSA", "EC", "OKP"})
_MAX_DOCUMENT = 1 << 20  # a JWKS or discovery document is a few KB
_JWT_SHAPE = re.compile(rb"[A-Za-z0-9_-]+={0,2}\.[A-Za-z0-9_-]+={0,2}\.[A-Za-z0-9_-]*={0,2}")
_SIRET = re.compile(r"[0-9]{14}")
# OIDC Core §2: sub is at most 255 ASCII characters. Anything else cannot be
# an account's id; it would go into the assertion, the audit log and the
# mapping look-up (PostgreSQL refuses NUL: a 503 for a signed-in agent).
_SUBJECT = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?")

_REASONS = (
    # Ordered subclass first: InvalidSignatureError is a DecodeError.
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not-yet-valid"),
    (jwt.InvalidAudienceError, "wrong-audience"),
    (jwt.InvalidIssuerError, "wrong-issuer"),
    (jwt.MissingRequiredClaimError, "missing-claim"),
    (jwt.InvalidSignatureError, "bad-signature"),
    # The token's alg does not match the key's: a signature we cannot accept.
    (jwt.InvalidAlgorithmError, "bad-signature"),
    # Only raised for keys below PyJWT's minimum length: unusable, not a bad token.
    (jwt.InvalidKeyError, "unknown-key"),
)


@dataclass(frozen=True, slots=True)
class OidcConfig:
    issuer: str
    audience: str
    jwks_url: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256")
    leeway_seconds: float = 30
    jwks_cache_seconds: float = 3600
    min_refresh_seconds: float = 30
    fetch_timeout: float = 5

    def __post_init__(self) -> None:
        if not self.issuer or not self.audience:
            raise ValueError("OIDC issuer and audience are required")
        object.__setattr__(self, "algorithms", tuple(self.algorithms))
        if not self.algorithms:
            raise ValueError("OIDC needs at least one signing algorithm")
        refused = [alg for alg in self.algorithms if alg not in _ASYMMETRIC]
        if refused:
            raise ValueError(f"OIDC algorithms must be asymmetric; refused: {refused}")
        if self.leeway_seconds < 0 or self.min_refresh_seconds < 0:
            raise ValueError("OIDC leeway and refresh interval cannot be negative")
        if self.jwks_cache_seconds <= 0 or self.fetch_timeout <= 0:
            raise ValueError("OIDC cache duration and fetch timeout must be positive")


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    subject: str
    email: str | None
    email_domain: str | None
    siret: str | None
    uid: str | None
    issuer: str


class InvalidToken(Exception):
    """The token is refused; ``reason`` is safe to log and never holds the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OidcUnavailable(Exception):
    """The provider's discovery document or JWKS could not be fetched."""


def looks_like_jwt(token: bytes) -> bool:
    """Whether ``token`` has a JWS compact shape with a JSON header naming ``alg``.

    Cheap, and no verification: it only tells a JWT from an API key
    (``spp_<id>_<secret>``, no dots). An empty signature still counts, so
    ``alg: none`` tokens reach the verifier and are refused there.
    """
    if _JWT_SHAPE.fullmatch(token) is None:
        return False
    segment = token.partition(b".")[0].rstrip(b"=")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4)))
    except (ValueError, RecursionError):
        return False
    return isinstance(header, dict) and "alg" in header


class OidcVerifier:
    """Verifies agents' tokens; one per gateway, shared by every request."""

    __slots__ = (
        "_attempted_at",
        "_config",
        "_fetched_at",
        "_generation",
        "_jwks",
        "_jwks_url",
        "_keys",
        "_last_error",
        "_lock",
    )

    def __init__(self, config: OidcConfig) -> None:
        self._config = config
        self._jwks_url = config.jwks_url
        self._jwks: dict[str, dict[str, Any]] = {}  # kid -> JWK as published
        self._keys: dict[tuple[str, str], jwt.PyJWK] = {}  # (kid, alg) -> parsed key
        self._fetched_at: float | None = None
        self._attempted_at = float("-inf")
        self._generation = 0  # counts fetch attempts, so waiters know one ran
        self._last_error: str | None = None
        self._lock = asyncio.Lock()

    async def verify(self, token: str, session: aiohttp.ClientSession) -> AgentIdentity:
        """The agent ``token`` names, or :class:`InvalidToken` / :class:`OidcUnavailable`."""
        config = self._config
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, RecursionError):
            raise InvalidToken("malformed") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in config.algorithms:
            # Refused before any key lookup: "none" and HS* never cost a JWKS fetch.
            raise InvalidToken("bad-signature")
        key = await self._key(header.get("kid"), alg, session)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(config.algorithms),
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway_seconds,
                options={
                    "require": ["exp", "iat", "sub", "iss", "aud"],
                    "enforce_minimum_key_length": True,
                },
            )
        except (jwt.PyJWTError, RecursionError) as exc:
            raise InvalidToken(_reason(exc)) from None
        return _identity(claims)

    async def _key(self, kid: str | None, alg: str, session: aiohttp.ClientSession) -> jwt.PyJWK:
        now = time.monotonic()
        fresh = self._fresh(now)
        key = self._lookup(kid, alg)
        # A stale key still serves while another request refetches: nobody waits.
        if key is not None and (fresh or self._lock.locked()):
            return key
        if fresh and now - self._attempted_at < self._config.min_refresh_seconds:
            raise InvalidToken("unknown-key")
        await self._refresh(session)
        key = self._lookup(kid, alg)
        if key is None:
            raise InvalidToken("unknown-key")
        return key

    def _fresh(self, now: float) -> bool:
        fetched = self._fetched_at
        return fetched is not None and now - fetched < self._config.jwks_cache_seconds

    def _lookup(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        if kid is None:
            # OIDC lets a provider omit kid when its JWKS holds a single key.
            if len(self._jwks) != 1:
                return None
            kid = next(iter(self._jwks))
        key = self._keys.get((kid, alg))
        if key is not None:
            return key
        published = self._jwks.get(kid)
        if published is None:
            return None
        try:
            # A key published without alg is bound to the token's alg (already
            # allow-listed); PyJWK refuses it if the key type does not fit.
            key = jwt.PyJWK.from_dict(published, None if "alg" in published else alg)
        except jwt.PyJWTError:
            raise InvalidToken("bad-signature") from None
        self._keys[(kid, alg)] = key
        return key

    async def _refresh(self, session: aiohttp.ClientSession) -> None:
        seen = self._generation
        async with self._lock:
            if self._generation != seen:
                # Another request fetched while this one waited: use its result.
                if not self._jwks and self._last_error is not None:
                    raise OidcUnavailable(self._last_error)
                return
            now = time.monotonic()
            # Expiry after a good fetch is the scheduled refresh; only unknown
            # kids and retries after a failure wait out the interval.
            scheduled = not self._fresh(now) and self._last_error is None
            recent = now - self._attempted_at < self._config.min_refresh_seconds
            if self._jwks and not scheduled and recent:
                return
            try:
                jwks = await self._fetch_jwks(session)
            except OidcUnavailable as exc:
                self._last_error = str(exc)
                if not self._jwks:
                    raise
            else:
                self._jwks, self._keys = jwks, {}
                self._fetched_at = time.monotonic()
                self._last_error = None
            finally:
                self._generation += 1
                self._attempted_at = time.monotonic()

    async def _fetch_jwks(self, session: aiohttp.ClientSession) -> dict[str, dict[str, Any]]:
        timeout = aiohttp.ClientTimeout(total=self._config.fetch_timeout)
        if self._jwks_url is None:
            issuer = self._config.issuer
            discovery = await _get_json(
                session, issuer.rstrip("/") + "/.well-known/openid-configuration", timeout
            )
            if not isinstance(discovery, dict) or discovery.get("issuer") != issuer:
                raise OidcUnavailable("OIDC discovery document does not name our issuer")
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                raise OidcUnavailable("OIDC discovery document has no usable jwks_uri")
            self._jwks_url = jwks_uri
        return _parse_jwks(await _get_json(session, self._jwks_url, timeout))


def _reason(exc: BaseException) -> str:
    for error, reason in _REASONS:
        if isinstance(exc, error):
            return reason
    return "malformed"


def _identity(claims: dict[str, Any]) -> AgentIdentity:
    subject = claims["sub"]
    if not isinstance(subject, str) or _SUBJECT.fullmatch(subject) is None:
        raise InvalidToken("malformed")
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        email = None
    # An address the provider says it has not verified proves nothing: it
    # must not match an e-mail or e-mail domain mapping. (Providers that do
    # not send the claim, ProConnect's federation among them, vouch for it.)
    if claims.get("email_verified") in (False, "false"):
        email = None
    # Only one well-formed address has a domain: "x@evil.com@caf.fr" or
    # "x@evil.com,y@caf.fr" must not pass for someone at caf.fr.
    domain = None
    if email is not None:
        try:
            domain = normalize_email(email).rpartition("@")[2]
        except ValueError:
            email = None
    siret = claims.get("siret")
    siret = siret.replace(" ", "") if isinstance(siret, str) else None
    uid = claims.get("uid")
    if isinstance(uid, int) and not isinstance(uid, bool):
        uid = str(uid)
    return AgentIdentity(
        subject=subject,
        email=email,
        email_domain=domain or None,
        siret=siret if siret is not None and _SIRET.fullmatch(siret) else None,
        uid=uid if isinstance(uid, str) and uid else None,
        issuer=claims["iss"],
    )


def _parse_jwks(document: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise OidcUnavailable("JWKS document has no keys list")
    usable: dict[str, dict[str, Any]] = {}
    for published in document["keys"]:
        if (
            not isinstance(published, dict)
            or not isinstance(published.get("kid"), str)
            or published.get("kty") not in _SIGNING_KTY
            or published.get("use", "sig") != "sig"
            # PyJWK would bind such a key to "none" or HMAC (or fail outside PyJWTError).
            or published.get("alg", "RS256") not in _ASYMMETRIC
        ):
            continue
        try:
            jwt.PyJWK.from_dict(published)
        except jwt.PyJWTError:
            continue  # one malformed key must not hide the others
        usable[published["kid"]] = published
    if not usable:
        raise OidcUnavailable("JWKS document has no usable signing key")
    return usable


async def _get_json(
    session: aiohttp.ClientSession, url: str, client_timeout: aiohttp.ClientTimeout
) -> Any:
    body = bytearray()
    try:
        async with session.get(
            url,
            headers={"Accept": "application/json"},
            timeout=client_timeout,
            # The gateway's session passes bodies through compressed; we parse this one.
            auto_decompress=True,
            raise_for_status=False,
        ) as response:
            if response.status != 200:
                raise OidcUnavailable(f"{url} answered HTTP {response.status}")
            async for chunk in response.content.iter_chunked(1 << 16):
                body += chunk
                if len(body) > _MAX_DOCUMENT:
                    raise OidcUnavailable(f"{url} answered more than {_MAX_DOCUMENT} bytes")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise OidcUnavailable(f"{url} unreachable: {type(exc).__name__}") from exc
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise OidcUnavailable(f"{url} answered invalid JSON") from exc

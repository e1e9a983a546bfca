"""Agents' OIDC tokens: real keys, real signatures, a real JWKS over HTTP.

Each test serves its provider with aiohttp in the test's own event loop and
counts what reached it, so the caching and refetch limits are asserted on
actual requests. Nothing about verification is mocked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from deploy.local.dev_oidc import create_provider_app, sign_token
from spp_gateway.oidc import (
    AgentIdentity,
    InvalidToken,
    OidcConfig,
    OidcUnavailable,
    OidcVerifier,
    looks_like_jwt,
)

pytestmark = pytest.mark.anyio

ISSUER = "https://proconnect.test/api/v2"
AUDIENCE = "spp-client-id"
RSA_A = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_B = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def public_jwk(key: PrivateKey, kid: str, alg: str | None = "RS256") -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    assert isinstance(jwk, dict)
    jwk.update(kid=kid, use="sig")
    if alg is not None:
        jwk["alg"] = alg
    return jwk


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "agent-42",
        "iat": now,
        "exp": now + 300,
        "email": "Jeanne.Agent@CAF.Fr",
        "siret": "13002526500013",
        "uid": "pc-7",
        "given_name": "Jeanne",
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def make_token(
    key: PrivateKey = RSA_A, kid: str | None = "k1", alg: str = "RS256", **overrides: Any
) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(**overrides), key, algorithm=alg, headers=headers)


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def hand_signed(header: dict[str, Any], secret: bytes | None) -> str:
    """A token PyJWT would refuse to produce: alg none, or HMAC keyed with a public key."""
    signing_input = (
        b64url(json.dumps(header).encode()) + b"." + b64url(json.dumps(claims()).encode())
    )
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest() if secret else b""
    return (signing_input + b"." + b64url(signature)).decode()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def serve(make_app: Callable[[str], web.Application]) -> AsyncIterator[str]:
    """Serves ``make_app(url)`` on a port bound before the app exists (its issuer needs it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    runner = web.AppRunner(make_app(url), access_log=None, shutdown_timeout=1)
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
        yield url
    finally:
        await runner.cleanup()
        sock.close()


class Provider:
    """An OIDC provider's public endpoints, with switches for its failures."""

    def __init__(self, *keys: dict[str, Any]) -> None:
        self.keys = list(keys)
        self.hits: Counter[str] = Counter()
        self.status = 200
        self.delay = 0.0
        self.discovered_issuer: str | None = None
        self.url = ""

    def app(self, url: str) -> web.Application:
        self.url = url

        async def discovery(request: web.Request) -> web.Response:
            self.hits["discovery"] += 1
            issuer = self.discovered_issuer or url
            return web.json_response({"issuer": issuer, "jwks_uri": url + "/jwks.json"})

        async def jwks(request: web.Request) -> web.Response:
            self.hits["jwks"] += 1
            await asyncio.sleep(self.delay)
            if self.status != 200:
                return web.Response(status=self.status, text="unavailable")
            return web.json_response({"keys": self.keys})

        async def not_json(request: web.Request) -> web.Response:
            return web.Response(text="{not json", content_type="application/json")

        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", discovery)
        app.router.add_get("/jwks.json", jwks)
        app.router.add_get("/broken.json", not_json)
        return app

    def config(self, **overrides: Any) -> OidcConfig:
        values: dict[str, Any] = {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwks_url": self.url + "/jwks.json",
        }
        values.update(overrides)
        return OidcConfig(**values)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    served = Provider(public_jwk(RSA_A, "k1"))
    async with serve(served.app):
        yield served


async def refused(verifier: OidcVerifier, token: str, session: aiohttp.ClientSession) -> str:
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token, session)
    if token:
        assert token not in str(caught.value)
        assert token not in repr(caught.value)
    return caught.value.reason


# --- valid tokens ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "alg", "published_alg"),
    [
        (RSA_A, "RS256", "RS256"),
        (RSA_A, "PS256", None),  # an RSA key published without alg serves PS256 too
        (EC_KEY, "ES256", "ES256"),
    ],
)
async def test_valid_token_gives_the_agent_identity(
    provider: Provider,
    session: aiohttp.ClientSession,
    key: PrivateKey,
    alg: str,
    published_alg: str | None,
) -> None:
    provider.keys = [public_jwk(key, "k1", published_alg)]
    verifier = OidcVerifier(provider.config())

    identity = await verifier.verify(make_token(key, alg=alg), session)

    assert identity == AgentIdentity(
        subject="agent-42",
        email="Jeanne.Agent@CAF.Fr",
        email_domain="caf.fr",
        siret="13002526500013",
        uid="pc-7",
        issuer=ISSUER,
    )
    assert not hasattr(identity, "given_name")


async def test_optional_claims_absent_or_unusable_are_none(
    provider: Provider, session: aiohttp.ClientSession
) -> None:
    verifier = OidcVerifier(provider.config())

    bare = await verifier.verify(make_token(email=None, siret=None, uid=None), session)
    odd = await verifier.verify(make_token(email="no-at-sign", siret="1300 2526", uid=7), session)

    assert (bare.email, bare.email_domain, bare.siret, bare.uid) == (None, None, None, None)
    assert (odd.email, odd.email_domain, odd.siret, odd.uid) == (None, None, None, "7")


@pytest.mark.parametrize(
    "claimed", ["x@evil.com@caf.fr", "x@evil.com,y@caf.fr", "x@evil.com y@caf.fr", "<x@caf.fr>"]
)
async def test_only_one_well_formed_address_has_a_domain(
    provider: Provider, session: aiohttp.ClientSession, claimed: str
) -> None:
    # Each of these would have been mapped as someone at caf.fr by its last '@'.
    identity = await OidcVerifier(provider.config()).verify(make_token(email=claimed), session)
    assert (identity.email, identity.email_domain) == (None, None)


async def test_token_without_kid_is_accepted_when_the_jwks_holds_one_key(
    provider: Provider, session: aiohttp.ClientSession
) -> None:
    verifier = OidcVerifier(provider.config())

    identity = await verifier.verify(make_token(kid=None), session)

    assert identity.subject == "agent-42"
    provider.keys = [public_jwk(RSA_A, "k1"), public_jwk(RSA_B, "k2")]
    other = OidcVerifier(provider.config())
    assert await refused(other, make_token(kid=None), session) == "unknown-key"


async def test_expiry_within_the_leeway_is_tolerated(
    provider: Provider, session: aiohttp.ClientSession
) -> None:
    verifier = OidcVerifier(provider.config(leeway_seconds=30))

    identity = await verifier.verify(make_token(exp=int(time.time()) - 10), session)

    assert identity.subject == "agent-42"


# --- refused tokens ----------------------------------------------------------------


async def test_expired_token_is_refused(provider: Provider, session: aiohttp.ClientSession) -> None:
    verifier = OidcVerifier(provider.config())
    now = int(time.time())

    token = make_token(iat=now - 4000, exp=now - 120)

    assert await refused(verifier, token, session) == "expired"


async def test_token_signed_by_another_key_under_the_same_kid_is_refused(
    provider: Provider, session: aiohttp.ClientSession
) -> None:
    verifier = OidcVerifier(provider.config())

    assert await refused(verifier, make_token(RSA_B, kid="k1"), session) == "bad-signature"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "another-client"}, "wrong-audience"),
        ({"iss": "https://evil.test"}, "wrong-issuer"),
        ({"iat": int(time.time()) + 600}, "not-yet-valid"),
        ({"nbf": int(time.time()) + 600}, "not-yet-valid"),
        ({"exp": None}, "missing-claim"),
        ({"sub": None}, "missing-claim"),
        ({"aud": None}, "missing-claim"),
    ],
)
async def test_claims_are_checked(
    provider: Provider,
    session: aiohttp.ClientSession,
    overrides: dict[str, Any],
    reason: str,
) -> None:
    verifier = OidcVerifier(provider.config())

    assert await refused(verifier, make_token(**overrides), session) == reason


async def test_alg_none_and_hmac_with_the_public_key_are_refused(
    provider: Provider, session: aiohttp.ClientSession
) -> None:
    verifier = OidcVerifier(provider.config())
    await verifier.verify(make_token(), session)
    public_pem = RSA_A.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    unsigned = hand_signed({"alg": "none", "typ": "JWT", "kid": "k1"}, None)
    confused = hand_signed({"alg": "HS256", "typ": "JWT", "kid": "k1"}, public_pem)
    mislabelled = hand_signed({"alg": "RS256", "typ": "JWT", "kid": "k1"}, public_pem)

    assert looks_like_jwt(unsigned.encode())
    assert await refused(verifier, unsigned, session) == "bad-signature"
    assert await refused(verifier, confused, session) == "bad-signature"
    assert await refused(verifier, mislabelled, session) == "bad-signature"
    assert provider.hits["jwks"] == 1


async def test_alg_must_match_the_published_key(
    provider: Provider, session: aiohttp.ClientSession
) -> None:
    provider.keys = [public_jwk(RSA_A, "k1", "RS256"), public_jwk(EC_KEY, "k2", None)]
    verifier = OidcVerifier(provider.config())

    assert await refused(verifier, make_token(alg="PS256"), session) == "bad-signature"
    assert await refused(verifier, make_token(RSA_A, kid="k2"), session) == "bad-signature"


@pytest.mark.parametrize(
    "token", ["", "spp_abc_secret", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30", "x" * 50]
)
async def test_malformed_tokens_are_refused(
    provider: Provider, session: aiohttp.ClientSession, token: str
) -> None:
    verifier = OidcVerifier(provider.config())

    assert await refused(verifier, token, session) == "malformed"
    assert provider.hits["jwks"] == 0


# --- the key cache -----------------------------------------------------------------


async def test_keys_are_fetched_once_then_cached(
    provider: Provider, session: aiohttp.ClientSession
) -> None:
    verifier = OidcVerifier(provider.config())

    for _ in range(5):
        await verifier.verify(make_token(), session)

    assert provider.hits["jwks"] == 1


async def test_rotated_key_is_fetched_and_accepted(
    provider: Provider, session: aiohttp.ClientSession
) -> None:
    verifier = OidcVerifier(provider.config(min_refresh_seconds=0.2))
    await verifier.verify(make_token(), session)

    provider.keys = [public_jwk(RSA_B, "k2")]
    await asyncio.sleep(0.3)
    identity = await verifier.verify(make_token(RSA_B, kid="k2"), session)

    assert identity.subject == "agent-42"
    assert provider.hits["jwks"] == 2
    # The old key left the JWKS, so its tokens go with it.
    await asyncio.sleep(0.3)
    assert await refused(verifier, make_token(RSA_A, kid="k1"), session) == "unknown-key"


async def test_unknown_kids_cause_at_most_one_refetch_per_interval(
    provider: Provider, session: aiohttp.ClientSession
) -> None:
    verifier = OidcVerifier(provider.config(min_refresh_seconds=0.5))
    await verifier.verify(make_token(), session)

    for i in range(20):
        assert await refused(verifier, make_token(kid=f"random-{i}"), session) == "unknown-key"
    assert provider.hits["jwks"] == 1

    await asyncio.sleep(0.6)
    results = await asyncio.gather(
        *(verifier.verify(make_token(kid=f"again-{i}"), session) for i in range(20)),
        return_exceptions=True,
    )
    assert {getattr(r, "reason", r) for r in results} == {"unknown-key"}
    assert provider.hits["jwks"] == 2
    # Known keys never wait on any of it.
    assert (await verifier.verify(make_token(), session)).subject == "agent-42"
    assert provider.hits["jwks"] == 2


async def test_concurrent_verifications_on_a_cold_cache_fetch_once(
    provider: Provider, session: aiohttp.ClientSession
) -> None:
    provider.delay = 0.1  # every verification is waiting when the answer lands
    verifier = OidcVerifier(provider.config())
    token = make_token()

    identities = await asyncio.gather(*(verifier.verify(token, session) for _ in range(50)))

    assert {identity.subject for identity in identities} == {"agent-42"}
    assert provider.hits["jwks"] == 1


async def test_jwks_is_discovered_from_the_issuer(
    provider: Provider, session: aiohttp.ClientSession
) -> None:
    verifier = OidcVerifier(
        provider.config(issuer=provider.url, jwks_url=None, min_refresh_seconds=0)
    )

    await verifier.verify(make_token(iss=provider.url), session)
    await refused(verifier, make_token(kid="unknown", iss=provider.url), session)

    assert provider.hits == Counter({"discovery": 1, "jwks": 2})


async def test_discovery_naming_another_issuer_is_refused(
    provider: Provider, session: aiohttp.ClientSession
) -> None:
    provider.discovered_issuer = "https://evil.test"
    verifier = OidcVerifier(provider.config(issuer=provider.url, jwks_url=None))

    with pytest.raises(OidcUnavailable):
        await verifier.verify(make_token(iss=provider.url), session)
    assert provider.hits["jwks"] == 0


# --- provider failures -------------------------------------------------------------


async def test_unreachable_provider_is_unavailable(session: aiohttp.ClientSession) -> None:
    verifier = OidcVerifier(
        OidcConfig(ISSUER, AUDIENCE, f"http://127.0.0.1:{free_port()}/jwks.json")
    )

    with pytest.raises(OidcUnavailable):
        await verifier.verify(make_token(), session)


@pytest.mark.parametrize("path", ["/jwks.json", "/broken.json", "/missing.json"])
async def test_failing_provider_is_unavailable_then_recovers(
    provider: Provider, session: aiohttp.ClientSession, path: str
) -> None:
    provider.status = 503
    verifier = OidcVerifier(provider.config(jwks_url=provider.url + path))

    with pytest.raises(OidcUnavailable) as caught:
        await verifier.verify(make_token(), session)
    assert path in str(caught.value)

    if path == "/jwks.json":
        provider.status = 200
        assert (await verifier.verify(make_token(), session)).subject == "agent-42"


async def test_slow_provider_times_out(provider: Provider, session: aiohttp.ClientSession) -> None:
    provider.delay = 0.5
    verifier = OidcVerifier(provider.config(fetch_timeout=0.1))

    with pytest.raises(OidcUnavailable):
        await verifier.verify(make_token(), session)


async def test_concurrent_requests_share_one_failed_fetch(
    provider: Provider, session: aiohttp.ClientSession
) -> None:
    provider.status, provider.delay = 503, 0.1
    verifier = OidcVerifier(provider.config())
    token = make_token()

    results = await asyncio.gather(
        *(verifier.verify(token, session) for _ in range(10)), return_exceptions=True
    )

    assert all(isinstance(result, OidcUnavailable) for result in results)
    assert provider.hits["jwks"] == 1


async def test_cached_keys_keep_serving_when_a_refresh_fails(
    provider: Provider, session: aiohttp.ClientSession
) -> None:
    verifier = OidcVerifier(provider.config(jwks_cache_seconds=0.1, min_refresh_seconds=30))
    await verifier.verify(make_token(), session)

    provider.status = 503
    await asyncio.sleep(0.2)
    for _ in range(3):
        assert (await verifier.verify(make_token(), session)).subject == "agent-42"

    # One failed attempt, then the refresh interval holds further ones back.
    assert provider.hits["jwks"] == 2


# --- the development provider ------------------------------------------------------


async def test_dev_provider_tokens_verify(session: aiohttp.ClientSession) -> None:
    async with serve(lambda url: create_provider_app(url, "spp-local", RSA_A)) as url:
        verifier = OidcVerifier(OidcConfig(issuer=url, audience="spp-local"))
        request = {"sub": "a1", "email": "marc@Anct.Gouv.fr", "siret": "13002526500013", "ttl": 60}
        async with session.post(url + "/token", json=request) as response:
            assert response.status == 200
            body = await response.json()

        identity = await verifier.verify(body["access_token"], session)

        assert body["id_token"] == body["access_token"]
        assert (body["token_type"], body["expires_in"]) == ("Bearer", 60)
        assert identity == AgentIdentity(
            subject="a1",
            email="marc@Anct.Gouv.fr",
            email_domain="anct.gouv.fr",
            siret="13002526500013",
            uid=None,
            issuer=url,
        )
        payload = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert payload["exp"] - payload["iat"] == 60


@pytest.mark.parametrize(
    "request_body",
    [{}, {"sub": ""}, {"sub": "a", "ttl": 0}, {"sub": "a", "ttl": 86401}, {"sub": "a", "email": 3}],
)
async def test_dev_provider_refuses_bad_token_requests(
    session: aiohttp.ClientSession, request_body: dict[str, Any]
) -> None:
    async with (
        serve(lambda url: create_provider_app(url, "spp-local", RSA_A)) as url,
        session.post(url + "/token", json=request_body) as response,
    ):
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"


async def test_dev_provider_signed_expired_token_is_refused(
    session: aiohttp.ClientSession,
) -> None:
    async with serve(lambda url: create_provider_app(url, "spp-local", RSA_A)) as url:
        async with session.get(url + "/jwks.json") as response:
            kid = (await response.json())["keys"][0]["kid"]
        verifier = OidcVerifier(OidcConfig(issuer=url, audience="spp-local"))
        token = sign_token(RSA_A, kid, url, "spp-local", {"sub": "a1"}, 60, time.time() - 3600)

        assert await refused(verifier, token, session) == "expired"


# --- configuration and shape -------------------------------------------------------


@pytest.mark.parametrize("algorithms", [("none",), ("RS256", "HS256"), ("HS512",), ()])
def test_config_refuses_symmetric_or_no_algorithms(algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="algorithm"):
        OidcConfig(ISSUER, AUDIENCE, algorithms=algorithms)


def test_looks_like_jwt() -> None:
    assert looks_like_jwt(make_token().encode())
    assert not looks_like_jwt(b"spp_k3y1d_s3cr3t")
    assert not looks_like_jwt(b"")
    assert not looks_like_jwt(b"abc.def.ghi")  # header is not JSON
    assert not looks_like_jwt(b64url(b'{"typ": "JWT"}') + b".e30.sig")  # no alg
    assert not looks_like_jwt(b64url(b"[" * 5000) + b".e30.sig")
    assert not looks_like_jwt(make_token().encode() + b".extra")


async def test_keys_are_refetched_when_the_cache_expires(
    provider: Provider, session: aiohttp.ClientSession
) -> None:
    verifier = OidcVerifier(provider.config(jwks_cache_seconds=0.1, min_refresh_seconds=30))
    await verifier.verify(make_token(), session)

    provider.keys.append(public_jwk(RSA_B, "k2"))
    await asyncio.sleep(0.2)

    assert (await verifier.verify(make_token(RSA_B, kid="k2"), session)).subject == "agent-42"
    assert provider.hits["jwks"] == 2

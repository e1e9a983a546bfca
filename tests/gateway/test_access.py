"""Access through the real gateway: every credential path, limits and bounds.

The gateway, the sites service and an OIDC provider's JWKS endpoint each run
under uvicorn on their own port; requests go over real HTTP. The gateway's
database (API keys, agent mappings, audit) and the sites database are the
suite's (SQLite, or PostgreSQL with SPP_TEST_DATABASE_URL).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from sqlalchemy import text

from spp_gateway import GatewaySettings, create_app
from spp_shared.kit.db import Database
from spp_shared.kit.identity import GATEWAY_ISSUER, AssertionSigner, Principal, PrincipalKind
from spp_shared.kit.keys import generate_private_key_pem
from tests.sites.fixtures import BRON, PARIS_12
from tests.support import GATEWAY_SIGNER

from .conftest import BOOTSTRAP_TOKEN, METRICS_TOKEN, OPS, ServedApp

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example.test"
AUDIENCE = "spp-access-tests"
KID = "test-key-1"
ADMIN = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}
CAF_SITE = BRON | {"network": "caf", "external_code": "CAF-BRON"}
CPAM_SITE = PARIS_12 | {"network": "cpam", "external_code": "CPAM-PARIS12"}


@dataclass
class Idp:
    """A real JWKS endpoint and the keys to sign tokens with."""

    url: str
    key: rsa.RSAPrivateKey
    stranger: rsa.RSAPrivateKey  # same kid, not published

    def token(
        self,
        sub: str,
        *,
        email: str | None = None,
        audience: str = AUDIENCE,
        issuer: str = ISSUER,
        ttl: int = 300,
        key: rsa.RSAPrivateKey | None = None,
        now: float | None = None,
    ) -> str:
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": audience,
            "sub": sub,
            "iat": issued,
            "exp": issued + ttl,
        }
        if email:
            claims["email"] = email
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": KID})


@pytest.fixture(scope="module")
def idp() -> Iterator[Idp]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwks = {"keys": [public | {"kid": KID, "use": "sig", "alg": "RS256"}]}
    app = FastAPI()

    @app.get("/jwks.json")
    async def keys() -> dict[str, Any]:
        return jwks

    served = ServedApp(app).start()
    yield Idp(
        url=served.url,
        key=key,
        stranger=rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )
    served.stop()


@dataclass
class Platform:
    gateway: httpx.AsyncClient
    sites_url: str
    db: Database

    async def create_key(self, **body: Any) -> dict[str, Any]:
        payload = {"name": "test key", "owner": "tests", "roles": ["network_manager"]} | body
        resp = await self.gateway.post("/v1/api-keys", json=payload, headers=ADMIN)
        assert resp.status_code == 201, resp.text
        created: dict[str, Any] = resp.json()
        return created


def _settings(sites_url: str, gateway_url: str, idp_url: str, **extra: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "sites_url": sites_url,
        "feedback_url": sites_url,
        "indicators_url": sites_url,
        "labelling_url": sites_url,
        "bootstrap_token": BOOTSTRAP_TOKEN,
        "database_url": gateway_url,
        "credential_cache_seconds": 5.0,
        "oidc_issuer": ISSUER,
        "oidc_audience": AUDIENCE,
        "oidc_jwks_url": f"{idp_url}/jwks.json",
        "access_log": False,
    }
    values.update(extra)
    return GatewaySettings(**values)


@pytest.fixture
async def platform_factory(
    served_sites_app: FastAPI, gateway_database: Database, idp: Idp
) -> AsyncIterator[Any]:
    sites = ServedApp(served_sites_app).start()
    started: list[ServedApp] = []
    clients: list[httpx.AsyncClient] = []

    async def make(**extra: Any) -> Platform:
        settings = _settings(sites.url, str(gateway_database.url), idp.url, **extra)
        served = ServedApp(create_app(settings), server_header=False).start()
        started.append(served)
        client = httpx.AsyncClient(base_url=served.url, timeout=10)
        clients.append(client)
        return Platform(gateway=client, sites_url=sites.url, db=gateway_database)

    try:
        yield make
    finally:
        for client in clients:
            await client.aclose()
        for served in started:
            served.stop()
        sites.stop()


@pytest.fixture
async def platform(platform_factory: Any) -> Platform:
    made: Platform = await platform_factory()
    return made


async def audit_events(gw: httpx.AsyncClient, until: Any) -> list[dict[str, Any]]:
    """The audit log once ``until(events)`` holds: proxied writes are recorded
    just after their answer went out, so a reader may have to wait a moment."""
    deadline = time.monotonic() + 5
    while True:
        page = await gw.get("/v1/audit-events", params={"limit": 100}, headers=ADMIN)
        assert page.status_code == 200, page.text
        events: list[dict[str, Any]] = page.json()["items"]
        if until(events) or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.05)


def _problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = resp.json()
    return body


# --- API keys ------------------------------------------------------------------------


async def test_a_network_key_works_for_its_network_only(platform: Platform) -> None:
    key = await platform.create_key(network="caf")
    secret = key["secret"]
    gw = platform.gateway
    bearer = {"Authorization": f"Bearer {secret}"}

    created = await gw.post("/v1/sites", json=CAF_SITE, headers=bearer)
    assert created.status_code == 201, created.text
    refused = _problem(await gw.post("/v1/sites", json=CPAM_SITE, headers=bearer), 403)
    assert "cpam" in refused["detail"]
    assert secret not in refused["detail"]

    # The same key in X-API-Key, for clients that cannot set Authorization.
    lookup = await gw.post(
        "/v1/sites/lookup", json={"ids": [created.json()["id"]]}, headers={"X-API-Key": secret}
    )
    assert lookup.status_code == 200, lookup.text
    assert len(lookup.json()["found"]) == 1

    listed = await gw.get("/v1/api-keys", headers=ADMIN)
    assert secret not in listed.text
    # The last use is written in the background, off the request path: wait for it.
    deadline = time.monotonic() + 5
    while listed.json()["items"][0]["last_used_at"] is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        listed = await gw.get("/v1/api-keys", headers=ADMIN)
    assert listed.json()["items"][0]["last_used_at"] is not None


async def test_wrong_unknown_expired_revoked_and_rotated_keys_are_refused(
    platform: Platform,
) -> None:
    gw = platform.gateway
    key = await platform.create_key(network="caf")
    secret: str = key["secret"]

    async def status_with(credential: str) -> int:
        resp = await gw.post(
            "/v1/sites/lookup", json={"ids": []}, headers={"Authorization": f"Bearer {credential}"}
        )
        if resp.status_code == 401:
            problem = _problem(resp, 401)
            assert credential not in resp.text
            assert problem["type"].endswith("invalid-credentials")
            assert resp.headers["www-authenticate"].startswith("Bearer")
        return resp.status_code

    assert await status_with(secret) == 200
    assert await status_with(secret[:-4] + "AAAA") == 401  # wrong secret for a real id
    assert await status_with("spp_zzzzzzzzzzzz_" + "A" * 43) == 401  # unknown id
    assert await status_with("not-a-credential") == 401

    rotated = await gw.post(f"/v1/api-keys/{key['id']}/rotate", headers=ADMIN)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert await status_with(secret) == 401  # the old secret, at once on this gateway
    assert await status_with(new_secret) == 200

    revoked = await gw.delete(f"/v1/api-keys/{key['id']}", headers=ADMIN)
    assert revoked.status_code == 200, revoked.text
    assert await status_with(new_secret) == 401

    ends = datetime.now(UTC) + timedelta(seconds=3)
    expiring = await platform.create_key(network="caf", expires_at=ends.isoformat())
    before = await status_with(expiring["secret"])
    if datetime.now(UTC) < ends:  # on a very slow machine the key may be gone already
        assert before == 200
    await asyncio.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 0.1)
    # Expiry is checked on every request, even while the key is cached.
    assert await status_with(expiring["secret"]) == 401


async def test_revocation_reaches_another_gateway(
    platform_factory: Any,
) -> None:
    first = await platform_factory(credential_cache_seconds=0.3)
    second = await platform_factory(credential_cache_seconds=0.3)
    key = await first.create_key(network="caf")
    bearer = {"Authorization": f"Bearer {key['secret']}"}
    ok = await second.gateway.post("/v1/sites/lookup", json={"ids": []}, headers=bearer)
    assert ok.status_code == 200
    await first.gateway.delete(f"/v1/api-keys/{key['id']}", headers=ADMIN)
    deadline = time.monotonic() + 5
    status = 200
    while time.monotonic() < deadline and status == 200:
        status = (
            await second.gateway.post("/v1/sites/lookup", json={"ids": []}, headers=bearer)
        ).status_code
    assert status == 401


async def test_only_admins_manage_keys(platform: Platform) -> None:
    key = await platform.create_key(network="caf")
    as_manager = {"Authorization": f"Bearer {key['secret']}"}
    gw = platform.gateway
    _problem(await gw.get("/v1/api-keys"), 401)
    _problem(await gw.get("/v1/api-keys", headers=as_manager), 403)
    escalate = {"name": "mine", "owner": "me", "roles": ["programme_admin"]}
    _problem(await gw.post("/v1/api-keys", json=escalate, headers=as_manager), 403)
    _problem(await gw.get("/v1/audit-events", headers=as_manager), 403)


# --- agents (OIDC) -------------------------------------------------------------------


async def test_agents_sign_in_and_get_their_mapped_network(platform: Platform, idp: Idp) -> None:
    gw = platform.gateway
    site = (await gw.post("/v1/sites", json=CAF_SITE, headers=ADMIN)).json()
    other = (await gw.post("/v1/sites", json=CPAM_SITE, headers=ADMIN)).json()
    token = idp.token("agent-42", email="camille.martin@caf.fr")
    agent = {"Authorization": f"Bearer {token}"}

    # Signed in, but no mapping yet: nothing beyond public actions.
    tag = (await gw.get(f"/v1/sites/{site['id']}")).headers["etag"]
    hours = {"opening_hours": {"monday": [{"opens": "09:00", "closes": "12:00"}]}}
    unmapped = await gw.patch(
        f"/v1/sites/{site['id']}", json=hours, headers=agent | {"If-Match": tag}
    )
    _problem(unmapped, 403)

    mapping = {"match": "email_domain", "value": "caf.fr", "network": "caf", "roles": ["agent"]}
    created = await gw.post("/v1/agent-mappings", json=mapping, headers=ADMIN)
    assert created.status_code == 201, created.text
    changed = await gw.patch(
        f"/v1/sites/{site['id']}", json=hours, headers=agent | {"If-Match": tag}
    )
    assert changed.status_code == 200, changed.text
    renamed = await gw.patch(
        f"/v1/sites/{site['id']}", json={"name": "x"}, headers=agent | {"If-Match": "*"}
    )
    assert _problem(renamed, 403)["errors"][0]["field"] == "name"
    foreign = await gw.patch(
        f"/v1/sites/{other['id']}", json=hours, headers=agent | {"If-Match": "*"}
    )
    _problem(foreign, 403)

    def agent_patched(events: list[dict[str, Any]]) -> bool:
        return any(e["actor"] == "agent:agent-42" and e["status"] == 200 for e in events)

    events = await audit_events(gw, agent_patched)
    assert agent_patched(events)
    assert "camille.martin" not in str(events)


@pytest.mark.parametrize(
    "case",
    ["expired", "wrong-signature", "wrong-audience", "wrong-issuer", "garbage"],
)
async def test_bad_agent_tokens_are_refused(platform: Platform, idp: Idp, case: str) -> None:
    token = {
        "expired": lambda: idp.token("a", ttl=60, now=time.time() - 3600),
        "wrong-signature": lambda: idp.token("a", key=idp.stranger),
        "wrong-audience": lambda: idp.token("a", audience="another-app"),
        "wrong-issuer": lambda: idp.token("a", issuer="https://evil.example"),
        "garbage": lambda: "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
    }[case]()
    resp = await platform.gateway.get("/v1/sites", headers={"Authorization": f"Bearer {token}"})
    problem = _problem(resp, 401)
    assert token not in resp.text
    assert "agent token" in problem["detail"]


async def test_without_oidc_settings_tokens_are_refused(platform_factory: Any, idp: Idp) -> None:
    platform = await platform_factory(oidc_issuer=None)
    resp = await platform.gateway.get(
        "/v1/sites", headers={"Authorization": f"Bearer {idp.token('a')}"}
    )
    assert "not configured" in _problem(resp, 401)["detail"]


# --- what the services see -----------------------------------------------------------


async def test_services_refuse_calls_that_bypass_the_gateway(platform: Platform) -> None:
    async with httpx.AsyncClient(base_url=platform.sites_url) as direct:
        bare = _problem(await direct.get("/v1/sites"), 401)
        assert bare["type"].endswith("missing-assertion")
        stranger = AssertionSigner(GATEWAY_ISSUER, generate_private_key_pem(), setting="test")
        admin = Principal(subject="me", kind=PrincipalKind.bootstrap)
        forged = stranger.sign(admin, method="GET", path="/v1/sites")  # not the gateway's key
        _problem(await direct.get("/v1/sites", headers={"X-SPP-Assertion": forged}), 401)
        expired = GATEWAY_SIGNER.sign(
            Principal(subject="me"), method="GET", path="/v1/sites", ttl=5, now=time.time() - 60
        )
        _problem(await direct.get("/v1/sites", headers={"X-SPP-Assertion": expired}), 401)
        assert (await direct.get("/healthz")).status_code == 200


# --- audit, limits, bounds, headers --------------------------------------------------


async def test_privileged_actions_are_audited_without_secrets(platform: Platform) -> None:
    gw = platform.gateway
    key = await platform.create_key(network="caf")
    bearer = {"Authorization": f"Bearer {key['secret']}", "X-Request-ID": "audit-me-1"}
    await gw.post("/v1/sites", json=CAF_SITE, headers=bearer)
    await gw.post("/v1/sites", json=CPAM_SITE, headers=bearer)  # refused, still recorded
    await gw.delete(f"/v1/api-keys/{key['id']}", headers=ADMIN)
    events = await audit_events(gw, lambda ev: sum(e["action"] == "request" for e in ev) >= 2)
    actions = [e["action"] for e in events]
    assert "api_key.created" in actions
    assert "api_key.revoked" in actions
    requests = [e for e in events if e["action"] == "request"]
    assert {(e["target"], e["status"]) for e in requests} >= {
        ("/v1/sites", 201),
        ("/v1/sites", 403),
    }
    assert all(e["request_id"] == "audit-me-1" for e in requests)
    assert key["secret"] not in str(events)
    async with platform.db.sessionmaker() as session:
        dump = str((await session.execute(text("SELECT * FROM audit_events"))).all())
    assert key["secret"] not in dump
    # The secret part alone (it may itself contain '_'): after "spp_<12-char id>_".
    assert key["secret"][len("spp_") + 12 + 1 :] not in dump


async def test_look_ups_are_reads_not_audited_changes(platform: Platform) -> None:
    gw = platform.gateway
    key = await platform.create_key(network="caf")
    bearer = {"Authorization": f"Bearer {key['secret']}"}
    looked = await gw.post(
        "/v1/sites/lookup", json={"ids": []}, headers=bearer | {"X-Request-ID": "look-1"}
    )
    assert looked.status_code == 200, looked.text
    created = await gw.post(
        "/v1/sites", json=CAF_SITE, headers=bearer | {"X-Request-ID": "write-1"}
    )
    assert created.status_code == 201, created.text
    events = await audit_events(gw, lambda ev: any(e["request_id"] == "write-1" for e in ev))
    assert {e["request_id"] for e in events if e["action"] == "request"} == {"write-1"}


async def test_rate_limits_answer_429_with_their_headers(platform_factory: Any) -> None:
    platform = await platform_factory(
        rate_limit_read_anonymous="3/minute", rate_limit_read="5/minute"
    )
    gw = platform.gateway
    seen = [await gw.get("/v1/networks") for _ in range(3)]
    assert [r.status_code for r in seen] == [200, 200, 200]
    assert seen[0].headers["ratelimit-limit"] == "3"
    assert [r.headers["ratelimit-remaining"] for r in seen] == ["2", "1", "0"]
    refused = await gw.get("/v1/networks")
    problem = _problem(refused, 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert "3" in problem["detail"]
    # A signed-in caller has its own budget.
    key = await platform.create_key(network="caf")
    mine = await gw.get("/v1/networks", headers={"X-API-Key": key["secret"]})
    assert mine.status_code == 200
    assert mine.headers["ratelimit-limit"] == "5"


async def test_bodies_over_the_route_limit_are_refused(platform_factory: Any) -> None:
    platform = await platform_factory(body_limit_write=2048, body_limit_bulk=1 << 20)
    gw = platform.gateway
    big = CAF_SITE | {"name": "x" * 4000}
    declared = await gw.post("/v1/sites", json=big, headers=ADMIN)
    assert _problem(declared, 413)["detail"].find("2048") >= 0

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"x" * 1024

    streamed = await gw.post(
        "/v1/sites", content=chunks(), headers=ADMIN | {"Content-Type": "application/json"}
    )
    _problem(streamed, 413)
    # The bulk route takes far more.
    rows = "network,external_code,name\n" + "".join(
        f"caf,BULK{i},Caf site {i}\n" for i in range(200)
    )
    assert len(rows) > 2048
    imported = await gw.post(
        "/v1/sites/import",
        content=rows.encode(),
        headers=ADMIN | {"Content-Type": "text/csv"},
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["created"] == 200


async def test_every_answer_carries_the_security_headers(platform_factory: Any) -> None:
    platform = await platform_factory(cors_origins=["https://front.example.gouv.fr"])
    gw = platform.gateway
    for resp in (
        await gw.get("/v1/networks"),
        await gw.get("/v1/nowhere"),
        await gw.get("/v1/api-keys"),
        await gw.get("/healthz"),
    ):
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["x-frame-options"] == "DENY"
        assert "content-security-policy" in resp.headers
        assert "server" not in resp.headers
    authed = await gw.get("/v1/networks", headers=ADMIN)
    assert authed.headers["cache-control"] == "no-store"
    preflight = await gw.options(
        "/v1/sites",
        headers={
            "Origin": "https://front.example.gouv.fr",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://front.example.gouv.fr"
    stranger = await gw.options(
        "/v1/sites",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in stranger.headers


async def test_the_gateway_describes_and_checks_its_own_resources(platform_factory: Any) -> None:
    platform = await platform_factory(metrics_token=METRICS_TOKEN)
    spec = (await platform.gateway.get("/openapi.json")).json()
    assert {"/v1/api-keys", "/v1/agent-mappings", "/v1/audit-events"} <= set(spec["paths"])
    ready = (await platform.gateway.get("/readyz", headers=OPS)).json()
    assert ready["database"] == "ok"


async def test_a_credential_header_sent_twice_is_refused(platform: Platform) -> None:
    key = await platform.create_key(network="caf")
    for name in ("Authorization", "X-API-Key"):
        good = f"Bearer {key['secret']}" if name == "Authorization" else key["secret"]
        bad = "Bearer nope" if name == "Authorization" else "nope"
        headers = httpx.Headers([(name, bad), (name, good)])
        resp = await platform.gateway.get("/v1/networks", headers=headers)
        assert "once" in _problem(resp, 401)["detail"]


async def test_failed_sign_ins_spend_the_address_budget(platform_factory: Any) -> None:
    platform = await platform_factory(rate_limit_read_anonymous="3/minute")
    wrong = {"Authorization": "Bearer spp_zzzzzzzzzzzz_" + "A" * 43}
    statuses = [(await platform.gateway.get("/v1/networks", headers=wrong)).status_code]
    statuses += [(await platform.gateway.get("/v1/networks", headers=wrong)).status_code]
    statuses += [(await platform.gateway.get("/v1/networks", headers=wrong)).status_code]
    assert statuses == [401, 401, 401]
    guessed = await platform.gateway.get("/v1/networks", headers=wrong)
    _problem(guessed, 429)


async def test_no_redirect_names_a_host_or_a_service(platform: Platform) -> None:
    for path in ("/v1/api-keys/", "/v1/networks/"):
        resp = await platform.gateway.get(path, headers={"Host": "evil.example"} | ADMIN)
        assert resp.status_code == 404, (path, resp.status_code, resp.headers.get("location"))
        assert "location" not in resp.headers


async def test_refused_administrative_attempts_are_audited(platform: Platform) -> None:
    key = await platform.create_key(network="caf")
    manager = {"X-API-Key": key["secret"], "X-Request-ID": "escalation-1"}
    attempt = {"name": "mine", "owner": "me", "roles": ["programme_admin"]}
    _problem(await platform.gateway.post("/v1/api-keys", json=attempt, headers=manager), 403)

    def recorded(events: list[dict[str, Any]]) -> bool:
        return any(e["request_id"] == "escalation-1" and e["status"] == 403 for e in events)

    assert recorded(await audit_events(platform.gateway, recorded))


async def test_a_bad_key_on_a_bulk_route_is_told_it_is_bad(platform: Platform) -> None:
    # Bulk routes are closed to anonymous callers; a caller whose key was
    # revoked must still learn that its key is the problem.
    resp = await platform.gateway.post(
        "/v1/sites/import",
        content=b"network,external_code,name\n",
        headers={"X-API-Key": "spp_zzzzzzzzzzzz_" + "A" * 43, "Content-Type": "text/csv"},
    )
    assert "unknown, revoked or expired" in _problem(resp, 401)["detail"]

"""The README's access tour, end to end: API keys, agents, shared limits, audit.

Real processes over real HTTP, started as `make run` starts them, on the
suite's database (SQLite, or PostgreSQL with ``SPP_TEST_DATABASE_URL``): the
sites service, the development OIDC provider and two gateway processes
sharing one gateway database and one Redis. So a key made through one
gateway works through the other, a rotation or revocation reaches both
(within ``SPP_GATEWAY_CREDENTIAL_CACHE_SECONDS``), and the anonymous
submission limit is one budget for both. A third gateway is configured as
another OIDC client: to it, the provider's tokens are for another audience.

Redis is shared with every other run: each run keeps its counters under its
own ``SPP_GATEWAY_RATE_LIMIT_KEY_PREFIX`` and deletes them, and only them, at
the end. It is also its own anonymous caller (a unique ``X-Forwarded-For``
address, which the gateways are told to believe from the loopback).

One test, in the README's order: each process costs seconds of imports, and
the steps build on each other (the key, the sites, the agent).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coredis
import httpx
import pytest

from spp_shared.contracts.permissions import Role
from spp_shared.kit.errors import PROBLEM_MEDIA_TYPE
from spp_shared.kit.identity import (
    GATEWAY_ISSUER,
    AssertionSigner,
    Principal,
    PrincipalKind,
)
from spp_shared.kit.keys import generate_private_key_pem
from tests.e2e.processes import free_port, stop, wait_ready
from tests.support import AsGateway, assertion_headers

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
TOKEN = "e2e-access-bootstrap-token-0123456789"
AUDIENCE = "spp-e2e"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
SUBMISSION_LIMIT = 5  # anonymous submissions per minute, all gateways together
CACHE_SECONDS = 0.5  # how late a rotation or revocation may reach the other gateway
PROPAGATION = CACHE_SECONDS + 2.5  # ...plus slack for a loaded machine

# The README's /tmp/sites.csv.
SITES_CSV = (
    "network,external_code,name,kind,address_line,postcode,commune_code,latitude,longitude,phone\n"
    "caf,CAF69-LYON3,Caf du Rhône - accueil Lyon 3e,agence,67 boulevard Vivier-Merle,"
    "69003,69383,45.7597,4.8590,0969325252\n"
    "caf,CAF69-VENISSIEUX,Caf du Rhône - Vénissieux,agence,2 avenue Marcel Houël,"
    "69200,69259,45.6975,4.8866,0969325252\n"
).encode()
CPAM_SITE = {
    "network": "cpam",
    "external_code": "CPAM69-LYON",
    "name": "CPAM du Rhône - Lyon",
    "address": {"commune_code": "69383"},
}
HOURS = {"opening_hours": {"monday": [{"opens": "08:30", "closes": "12:30"}]}}
LYON3 = "/v1/sites/caf:CAF69-LYON3"
CPAM69 = "/v1/sites/cpam:CPAM69-LYON"
LOOKUP = {"refs": [{"network": "caf", "external_code": "CAF69-LYON3"}]}


# --- processes --------------------------------------------------------------------


def redis_up() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=0.5):
            return True
    except OSError:
        return False


# --- rate-limit counters in the shared Redis --------------------------------------


async def _counters(prefix: str, *, delete: bool) -> list[str]:
    """The Redis keys under ``prefix`` (this run's counters), deleted if asked."""
    client: Any = coredis.Redis(host=REDIS_HOST, port=REDIS_PORT, decode_responses=True)
    try:
        found = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if delete and found:
            await client.delete(found)
        return found
    finally:
        client.connection_pool.disconnect()


def counters(prefix: str) -> list[str]:
    return asyncio.run(_counters(prefix, delete=False))


# --- the platform -----------------------------------------------------------------


@dataclass
class Platform:
    one: httpx.Client
    two: httpx.Client
    other_client: httpx.Client  # a gateway configured as another OIDC client (audience)
    sites: str
    oidc: str
    client_ip: str  # whom the gateways see as the anonymous caller
    key_prefix: str  # this run's rate-limit counters in Redis, deleted at the end

    def agent_token(self, sub: str, email: str, **extra: Any) -> str:
        """A token from the development provider, as the README gets one."""
        resp = httpx.post(
            f"{self.oidc}/token", json={"sub": sub, "email": email, **extra}, timeout=10
        )
        resp.raise_for_status()
        token: str = resp.json()["access_token"]
        return token


def unique_client_ip() -> str:
    # A documentation IPv6 address (2001:db8::/32) of this run only.
    return str(ipaddress.IPv6Address((0x20010DB8 << 96) | secrets.randbits(96)))


@pytest.fixture
def platform(fresh_database_url: Callable[[str], str], tmp_path: Path) -> Iterator[Platform]:
    # CI (.ci/run) starts Redis when it is down: a missing one is a failure, not a skip.
    assert redis_up(), f"no Redis on {REDIS_HOST}:{REDIS_PORT}: the gateways share it"
    key_prefix = f"spp-test-{uuid.uuid4().hex}"
    sites_port, oidc_port = free_port(), free_port()
    gateway_ports = [free_port(), free_port(), free_port()]
    issuer = f"http://127.0.0.1:{oidc_port}"
    env = dict(os.environ)
    env.update(
        SPP_SITES_DATABASE_URL=fresh_database_url("e2e_access_sites"),
        SPP_GATEWAY_DATABASE_URL=fresh_database_url("e2e_access_gateway"),
        SPP_BOOTSTRAP_TOKEN=TOKEN,
        SPP_GATEWAY_SITES_URL=f"http://127.0.0.1:{sites_port}",
        # Not started: submissions get the gateway's 503, once the limiter let them by.
        SPP_GATEWAY_FEEDBACK_URL=f"http://127.0.0.1:{free_port()}",
        SPP_GATEWAY_INDICATORS_URL=f"http://127.0.0.1:{free_port()}",
        SPP_GATEWAY_LABELLING_URL=f"http://127.0.0.1:{free_port()}",
        SPP_GATEWAY_REDIS_URL=f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
        SPP_GATEWAY_RATE_LIMIT_KEY_PREFIX=key_prefix,
        SPP_GATEWAY_RATE_LIMIT_SUBMISSION_ANONYMOUS=f"{SUBMISSION_LIMIT}/minute",
        SPP_GATEWAY_CREDENTIAL_CACHE_SECONDS=str(CACHE_SECONDS),
        SPP_GATEWAY_OIDC_ISSUER=issuer,
        SPP_GATEWAY_OIDC_AUDIENCE=AUDIENCE,
        SPP_GATEWAY_OIDC_LEEWAY_SECONDS="0",  # a token is refused as soon as it expired
        # The run's own anonymous caller is named in X-Forwarded-For: the
        # gateways trust it from the loopback, as from a deployment's proxy.
        SPP_GATEWAY_FORWARDED_ALLOW_IPS="127.0.0.1",
    )
    log = tmp_path / "platform.log"
    print(f"process logs: {log}")
    procs: list[subprocess.Popen[bytes]] = []
    clients: list[httpx.Client] = []
    with log.open("wb") as out:

        def start(url: str, *args: str, **extra_env: str) -> tuple[str, subprocess.Popen[bytes]]:
            proc = subprocess.Popen(
                [sys.executable, *args], env=env | extra_env, cwd=ROOT, stdout=out, stderr=out
            )
            procs.append(proc)
            return url, proc

        try:
            starting = [
                start(
                    f"http://127.0.0.1:{sites_port}/healthz",
                    *("-m", "spp_sites", "serve", "--migrate", "--port", str(sites_port)),
                ),
                start(
                    f"{issuer}/.well-known/openid-configuration",
                    *(str(ROOT / "deploy/local/dev_oidc.py"), "--port", str(oidc_port)),
                    *("--audience", AUDIENCE),
                ),
            ]
            # The gateways' own database, migrated by its command while those start.
            migrated = subprocess.run(
                [sys.executable, "-m", "spp_gateway", "migrate"],
                env=env,
                capture_output=True,
                text=True,
            )
            assert migrated.returncode == 0, migrated.stderr
            for i, port in enumerate(gateway_ports):
                other = {"SPP_GATEWAY_OIDC_AUDIENCE": "spp-another-client"} if i == 2 else {}
                starting.append(
                    start(
                        f"http://127.0.0.1:{port}/healthz",
                        *("-m", "spp_gateway", "--port", str(port)),
                        **other,
                    )
                )
            for url, proc in starting:
                wait_ready(url, proc, log)

            client_ip = unique_client_ip()
            clients = [
                httpx.Client(
                    base_url=f"http://127.0.0.1:{port}",
                    headers={"X-Forwarded-For": client_ip},
                    timeout=30,
                )
                for port in gateway_ports
            ]
            yield Platform(
                one=clients[0],
                two=clients[1],
                other_client=clients[2],
                sites=f"http://127.0.0.1:{sites_port}",
                oidc=issuer,
                client_ip=client_ip,
                key_prefix=key_prefix,
            )
        finally:
            for client in clients:
                client.close()
            stop(procs)
            asyncio.run(_counters(key_prefix, delete=True))


# --- helpers ----------------------------------------------------------------------


def until_status(
    call: Callable[[], httpx.Response], status: int, *, within: float
) -> httpx.Response:
    """Repeat ``call`` until it answers ``status`` (a change still propagating)."""
    deadline = time.monotonic() + within
    while True:
        resp = call()
        if resp.status_code == status:
            return resp
        if time.monotonic() > deadline:
            raise AssertionError(f"still {resp.status_code} after {within} s: {resp.text[:300]}")
        time.sleep(0.05)


def assert_problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    return body


# --- the tour ---------------------------------------------------------------------


def test_access_tour_across_two_gateways(platform: Platform) -> None:
    one, two = platform.one, platform.two
    admin = {"Authorization": f"Bearer {TOKEN}"}
    run = uuid.uuid4().hex[:12]
    import_id, patch_id = f"tour-import-{run}", f"tour-patch-{run}"

    # 1. The bootstrap admin gives the CAF head office a key: its secret is shown once.
    created = one.post(
        "/v1/api-keys",
        json={
            "name": "CNAF imports",
            "owner": "CNAF - direction du réseau",
            "roles": ["network_manager"],
            "network": "caf",
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    key_id, secret = created.json()["id"], created.json()["secret"]
    assert secret.startswith(f"spp_{key_id}_")
    listed = two.get("/v1/api-keys", params={"network": "caf"}, headers=admin)
    assert listed.status_code == 200
    assert [k["id"] for k in listed.json()["items"]] == [key_id]
    assert "secret" not in listed.json()["items"][0]
    assert secret not in listed.text

    # 2. The key imports CAF sites through gateway 1, then through gateway 2 as X-API-Key...
    csv = {"Content-Type": "text/csv"}
    caf = {"Authorization": f"Bearer {secret}"}
    imported = one.post(
        "/v1/sites/import", content=SITES_CSV, headers=caf | csv | {"X-Request-ID": import_id}
    )
    assert imported.status_code == 200, imported.text
    assert (imported.json()["created"], imported.json()["committed"]) == (2, True)
    again = two.post("/v1/sites/import", content=SITES_CSV, headers={"X-API-Key": secret} | csv)
    assert again.status_code == 200, again.text
    assert (again.json()["unchanged"], again.json()["rejected"]) == (2, 0)
    # ...and is refused a CPAM site (403 problem+json), which the admin may create.
    refused = assert_problem(one.post("/v1/sites", json=CPAM_SITE, headers=caf), 403)
    assert "cpam" in refused["detail"]
    assert one.post("/v1/sites", json=CPAM_SITE, headers=admin).status_code == 201

    # 3. Agents: a mapping grants caf.fr addresses the agent role on the CAF network.
    mapping = one.post(
        "/v1/agent-mappings",
        json={"match": "email_domain", "value": "caf.fr", "network": "caf", "roles": ["agent"]},
        headers=admin,
    )
    assert mapping.status_code == 201, mapping.text
    sub = f"agent-{run}"
    token = platform.agent_token(sub, "camille.martin@caf.fr")
    agent = {"Authorization": f"Bearer {token}"}
    etag = two.get(LYON3).headers["etag"]
    patched = two.patch(
        LYON3, json=HOURS, headers=agent | {"If-Match": etag, "X-Request-ID": patch_id}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["opening_hours"] == HOURS["opening_hours"]
    # ...but not its name (403 naming the field), nor anything of another network.
    renamed = two.patch(
        LYON3, json={"name": "Caf renamed"}, headers=agent | {"If-Match": patched.headers["etag"]}
    )
    assert [e["field"] for e in assert_problem(renamed, 403)["errors"]] == ["name"]
    cpam_etag = one.get(CPAM69).headers["etag"]
    assert_problem(one.patch(CPAM69, json=HOURS, headers=agent | {"If-Match": cpam_etag}), 403)

    # The same token to a gateway that is another OIDC client: not for it (401).
    wrong = assert_problem(platform.other_client.get(LYON3, headers=agent), 401)
    assert "wrong-audience" in wrong["detail"]
    # A token living one second: refused by both gateways once it expired.
    brief = {"Authorization": f"Bearer {platform.agent_token(sub, 'c.m@caf.fr', ttl=1)}"}
    expired = until_status(lambda: one.get(LYON3, headers=brief), 401, within=5)
    assert "(expired)" in assert_problem(expired, 401)["detail"]
    assert "(expired)" in assert_problem(two.get(LYON3, headers=brief), 401)["detail"]

    # 4. Anonymous submissions: one budget for both gateways, then 429.
    answers = [(one, two)[i % 2].post("/v1/ratings", json={}) for i in range(SUBMISSION_LIMIT + 1)]
    *allowed, limited = answers
    assert [r.status_code == 429 for r in allowed] == [False] * SUBMISSION_LIMIT
    assert {r.headers["ratelimit-limit"] for r in allowed} == {str(SUBMISSION_LIMIT)}
    assert [int(r.headers["ratelimit-remaining"]) for r in allowed] == [4, 3, 2, 1, 0]
    assert assert_problem(limited, 429)["type"].endswith("/rate-limited")
    retry_after = int(limited.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert limited.headers["ratelimit-limit"] == str(SUBMISSION_LIMIT)
    assert limited.headers["ratelimit-remaining"] == "0"
    assert int(limited.headers["ratelimit-reset"]) == retry_after
    # The counters are in Redis, under the names the fixture deletes at the end.
    assert counters(platform.key_prefix)

    # 5. The audit log: privileged actions and proxied writes, with their request ids.
    #    Proxied writes are recorded once their answer went out: wait for them.
    deadline = time.monotonic() + 10
    while True:
        audit = two.get("/v1/audit-events", params={"limit": 100}, headers=admin)
        assert audit.status_code == 200, audit.text
        events: list[dict[str, Any]] = audit.json()["items"]
        if {import_id, patch_id} <= {e["request_id"] for e in events}:
            break
        assert time.monotonic() < deadline, f"proxied writes not in the audit log: {events}"
        time.sleep(0.1)
    for credential in (secret, secret.rpartition("_")[2], TOKEN, token):
        assert credential not in audit.text
    by_action: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_action.setdefault(event["action"], []).append(event)
    [key_created] = by_action["api_key.created"]
    assert (key_created["target"], key_created["actor"]) == (key_id, "bootstrap-admin")
    assert key_created["request_id"] == created.headers["x-request-id"]
    [mapping_created] = by_action["agent_mapping.created"]
    assert mapping_created["target"] == mapping.json()["id"]
    assert mapping_created["request_id"] == mapping.headers["x-request-id"]
    requests = {e["request_id"]: e for e in by_action["request"]}
    assert requests[import_id] | {"id": None, "at": None} == {
        "id": None,
        "at": None,
        "actor": f"api_key:{key_id}",
        "actor_kind": "api_key",
        "action": "request",
        "target": "/v1/sites/import",
        "status": 200,
        "request_id": import_id,
        "details": {"method": "POST"},
    }
    assert requests[patch_id]["actor"] == f"agent:{sub}"
    assert (requests[patch_id]["target"], requests[patch_id]["status"]) == (LYON3, 200)

    # 6. Rotate through gateway 1: the old secret is refused there at once, and
    #    through gateway 2 (which has the key cached) within the cache time.
    def lookup(client: httpx.Client, key_secret: str) -> httpx.Response:
        return client.post(
            "/v1/sites/lookup", json=LOOKUP, headers={"Authorization": f"Bearer {key_secret}"}
        )

    assert lookup(two, secret).status_code == 200
    rotated = one.post(f"/v1/api-keys/{key_id}/rotate", headers=admin)
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != secret
    assert new_secret.startswith(f"spp_{key_id}_")
    old = assert_problem(lookup(one, secret), 401)
    assert old["type"].endswith("/invalid-credentials")
    until_status(lambda: lookup(two, secret), 401, within=PROPAGATION)
    assert lookup(one, new_secret).status_code == 200
    until_status(lambda: lookup(two, new_secret), 200, within=PROPAGATION)
    # Revoke through gateway 2: refused there at once, through gateway 1 soon after.
    revoked = two.delete(f"/v1/api-keys/{key_id}", headers=admin)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert_problem(lookup(two, new_secret), 401)
    until_status(lambda: lookup(one, new_secret), 401, within=PROPAGATION)
    assert_problem(one.get(LYON3, headers={"X-API-Key": new_secret}), 401)

    # 7. Around the gateway: the service refuses a call without an assertion, or
    #    with one signed by any other key than the platform's.
    intruder = Principal(
        subject="intruder", kind=PrincipalKind.bootstrap, roles=[Role.programme_admin]
    )
    url = f"{platform.sites}/v1/sites"
    site = {"network": "caf", "external_code": "CAF69-DIRECT", "name": "Caf directe"}
    with httpx.Client(timeout=10, auth=AsGateway(anonymous=False)) as direct:
        assert_problem(direct.post(url, json=site), 401)
        assert_problem(direct.get(url), 401)  # public reads too: only the gateway calls
        stranger = AssertionSigner(GATEWAY_ISSUER, generate_private_key_pem(), setting="intruder")
        forged = stranger.sign(intruder, method="POST", path="/v1/sites")
        assert_problem(direct.post(url, json=site, headers={"x-spp-assertion": forged}), 401)
        # The same claims signed with the gateway's key pass: the key is what counts.
        signed = direct.post(url, json=site, headers=assertion_headers(intruder))
        assert signed.status_code == 201, signed.text

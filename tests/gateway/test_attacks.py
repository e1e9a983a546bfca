"""Attacks on the gateway's identity and access layer that once worked.

Each test is the regression test of one problem found by a security review:
it replays the attack (through a real gateway over HTTP when the path
matters, or on the store when a race needs pinning down) and checks the
answer. The database is the suite's (SQLite, or PostgreSQL with
SPP_TEST_DATABASE_URL: several of these were 500s on PostgreSQL only).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import event, select

from spp_gateway import GatewaySettings, create_app
from spp_gateway.models import AuditEvent
from spp_gateway.oidc import InvalidToken, OidcConfig, OidcVerifier
from spp_gateway.store import AgentDirectory, ApiKeyStore, record_request, repository
from spp_gateway.store import api_keys as api_keys_module
from spp_gateway.store.grants import escalation_issues
from spp_gateway.store.keys import new_key, new_key_id
from spp_shared.contracts.access import (
    AgentMappingCreate,
    AgentMappingPatch,
    ApiKeyCreate,
    GatewayAction,
)
from spp_shared.contracts.permissions import Role
from spp_shared.kit.db import Database
from spp_shared.kit.errors import Forbidden
from spp_shared.kit.identity import Principal, PrincipalKind

from .conftest import BOOTSTRAP_TOKEN, Admin, ServedApp, as_principal

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.attacks.test"
AUDIENCE = "spp-attack-tests"
KID = "attack-key-1"
BOOTSTRAP = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}
ADMIN = Principal(
    subject="bootstrap-admin", kind=PrincipalKind.bootstrap, roles=[Role.programme_admin]
)


# --- a real gateway, a real sites service, a real JWKS endpoint --------------------------


@dataclass
class Idp:
    url: str
    key: rsa.RSAPrivateKey

    def token(self, sub: Any, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 300}
        payload.update(claims)
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": KID})


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
    yield Idp(url=served.url, key=key)
    served.stop()


@pytest.fixture
async def gateway(
    served_sites_app: FastAPI, gateway_database: Database, idp: Idp
) -> AsyncIterator[httpx.AsyncClient]:
    sites = ServedApp(served_sites_app).start()
    settings = GatewaySettings(
        sites_url=sites.url,
        feedback_url=sites.url,
        indicators_url=sites.url,
        labelling_url=sites.url,
        bootstrap_token=BOOTSTRAP_TOKEN,
        database_url=str(gateway_database.url),
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=f"{idp.url}/jwks.json",
        rate_limits_enabled=False,
        access_log=False,
    )
    served = ServedApp(create_app(settings), server_header=False).start()
    try:
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
            yield client
    finally:
        served.stop()
        sites.stop()


async def new_api_key(gw: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> Any:
    payload = {"name": "attack", "owner": "review", "roles": ["programme_admin"]} | body
    return await gw.post("/v1/api-keys", json=payload, headers=headers)


def problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = resp.json()
    return body


# --- privilege escalation: scopes narrow a credential, and must stay narrowed -----------


async def test_a_key_scoped_to_managing_keys_cannot_mint_or_recover_a_wider_key(
    gateway: httpx.AsyncClient,
) -> None:
    full = (await new_api_key(gateway, BOOTSTRAP, name="full admin")).json()
    rotator = (await new_api_key(gateway, BOOTSTRAP, scopes=["api-keys:manage"])).json()
    as_rotator = {"X-API-Key": rotator["secret"]}

    # It was: 201, an unscoped programme_admin key (audit log, everything).
    minted = problem(await new_api_key(gateway, as_rotator), 403)
    assert minted["type"].endswith("grant-beyond-caller")
    assert "audit:read" in minted["detail"]
    wider_role = await new_api_key(
        gateway, as_rotator, roles=["network_manager"], network="caf", scopes=["sites:import"]
    )
    problem(wider_role, 403)
    # It was: 200 and the full key's new secret, i.e. the full key itself.
    rotated = problem(
        await gateway.post(f"/v1/api-keys/{full['id']}/rotate", headers=as_rotator), 403
    )
    assert "secret" not in rotated
    assert (
        await gateway.get("/v1/api-keys", headers={"X-API-Key": full["secret"]})
    ).status_code == 200

    # Within its own scopes it still works.
    same = await new_api_key(gateway, as_rotator, scopes=["api-keys:manage"])
    assert same.status_code == 201, same.text
    again = await gateway.post(f"/v1/api-keys/{same.json()['id']}/rotate", headers=as_rotator)
    assert again.status_code == 200, again.text


async def all_pages(gw: httpx.AsyncClient, path: str, headers: dict[str, str]) -> list[str]:
    """The ids of every item of a listing, one item a page (the filter must page right)."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        resp = await gw.get(path, params=params, headers=headers)
        assert resp.status_code == 200, resp.text
        ids += [item["id"] for item in resp.json()["items"]]
        cursor = resp.json()["next_cursor"]
        if cursor is None:
            return ids


async def test_a_key_scoped_to_managing_keys_acts_only_on_keys_no_wider(
    gateway: httpx.AsyncClient,
) -> None:
    full = (await new_api_key(gateway, BOOTSTRAP, name="full admin")).json()
    rotator = (await new_api_key(gateway, BOOTSTRAP, scopes=["api-keys:manage"])).json()
    as_rotator = {"X-API-Key": rotator["secret"]}
    same = (await new_api_key(gateway, as_rotator, scopes=["api-keys:manage"])).json()
    newer_full = (await new_api_key(gateway, BOOTSTRAP, name="newer full admin")).json()

    # It was: 200, the administrators' key revoked by a key that manages keys only.
    revoked = problem(await gateway.delete(f"/v1/api-keys/{full['id']}", headers=as_rotator), 403)
    assert revoked["type"].endswith("grant-beyond-caller")
    assert "revoke" in revoked["detail"]
    # What is too wide is the key the path names, not a body the request has none of.
    assert {e["location"] for e in revoked["errors"]} == {"path"}
    assert (await gateway.get("/v1/api-keys", headers={"X-API-Key": full["secret"]})).is_success
    problem(await gateway.get(f"/v1/api-keys/{full['id']}", headers=as_rotator), 403)

    # It was: every key listed. Now only those no wider, page after page.
    seen = await all_pages(gateway, "/v1/api-keys", as_rotator)
    assert {rotator["id"], same["id"]} <= set(seen)
    assert not {full["id"], newer_full["id"]} & set(seen)
    everything = await all_pages(gateway, "/v1/api-keys", BOOTSTRAP)
    assert {full["id"], newer_full["id"], rotator["id"], same["id"]} <= set(everything)

    # Keys no wider it still reads and revokes.
    got = await gateway.get(f"/v1/api-keys/{same['id']}", headers=as_rotator)
    assert got.status_code == 200, got.text
    gone = await gateway.delete(f"/v1/api-keys/{same['id']}", headers=as_rotator)
    assert gone.status_code == 200, gone.text


async def test_a_key_scoped_to_mappings_acts_only_on_mappings_no_wider(
    gateway: httpx.AsyncClient,
) -> None:
    mapper = (
        await new_api_key(gateway, BOOTSTRAP, scopes=["agent-mappings:manage", "sites:lookup"])
    ).json()
    as_mapper = {"X-API-Key": mapper["secret"]}
    admins = await gateway.post(
        "/v1/agent-mappings",
        json={
            "match": "email_domain",
            "value": "modernisation.gouv.fr",
            "roles": ["programme_admin"],
        },
        headers=BOOTSTRAP,
    )
    assert admins.status_code == 201, admins.text
    url = f"/v1/agent-mappings/{admins.json()['id']}"
    moderators = await gateway.post(
        "/v1/agent-mappings",
        json={"match": "email_domain", "value": "moderation.gouv.fr", "roles": ["moderator"]},
        headers=as_mapper,
    )
    assert moderators.status_code == 201, moderators.text

    # It was: 204, the programme's administrators signed in as nobody.
    deleted = problem(await gateway.delete(url, headers=as_mapper), 403)
    assert deleted["type"].endswith("grant-beyond-caller")
    assert {e["location"] for e in deleted["errors"]} == {"path"}
    # It was: 200, the administrators demoted (a narrower grant, but theirs to keep).
    demote = await gateway.patch(
        url, json={"roles": ["moderator"]}, headers=as_mapper | {"If-Match": "*"}
    )
    problem(demote, 403)
    problem(await gateway.get(url, headers=as_mapper), 403)
    seen = await all_pages(gateway, "/v1/agent-mappings", as_mapper)
    assert moderators.json()["id"] in seen
    assert admins.json()["id"] not in seen
    assert admins.json()["id"] in await all_pages(gateway, "/v1/agent-mappings", BOOTSTRAP)
    assert (await gateway.get(url, headers=BOOTSTRAP)).json()["roles"] == ["programme_admin"]

    own = f"/v1/agent-mappings/{moderators.json()['id']}"
    assert (await gateway.delete(own, headers=as_mapper)).status_code == 204


async def test_a_key_scoped_to_mappings_cannot_make_an_agent_an_unscoped_admin(
    gateway: httpx.AsyncClient, idp: Idp
) -> None:
    mapper = (await new_api_key(gateway, BOOTSTRAP, scopes=["agent-mappings:manage"])).json()
    as_mapper = {"X-API-Key": mapper["secret"]}
    grant = {"match": "subject", "value": "attacker", "roles": ["programme_admin"]}
    problem(await gateway.post("/v1/agent-mappings", json=grant, headers=as_mapper), 403)

    # Nor by upgrading a mapping an unscoped admin made.
    made = await gateway.post(
        "/v1/agent-mappings",
        json={"match": "subject", "value": "attacker", "roles": ["agent"], "network": "caf"},
        headers=BOOTSTRAP,
    )
    assert made.status_code == 201, made.text
    upgrade = await gateway.patch(
        f"/v1/agent-mappings/{made.json()['id']}",
        json={"roles": ["programme_admin"]},
        headers=as_mapper | {"If-Match": made.headers["etag"]},
    )
    problem(upgrade, 403)
    token = idp.token("attacker")
    audit = await gateway.get("/v1/audit-events", headers={"Authorization": f"Bearer {token}"})
    problem(audit, 403)


# --- time: a credential that expires hands out none that outlives it ---------------------


def fields_of(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["location"], e["field"]) for e in body["errors"]]


async def test_an_expiring_key_cannot_mint_rotate_or_map_a_grant_that_outlives_it(
    gateway: httpx.AsyncClient, idp: Idp
) -> None:
    ends = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    scopes = ["api-keys:manage", "agent-mappings:manage", "sites:lookup"]
    temp = await new_api_key(gateway, BOOTSTRAP, scopes=scopes, expires_at=ends.isoformat())
    assert temp.status_code == 201, temp.text
    as_temp = {"X-API-Key": temp.json()["secret"]}
    narrow = {"scopes": ["api-keys:manage"]}

    # It was: 201 and "expires_at": null, a successor that never ends.
    forever = problem(await new_api_key(gateway, as_temp, **narrow), 403)
    assert forever["type"].endswith("grant-beyond-caller")
    assert fields_of(forever) == [("body", "expires_at")]
    assert ends.isoformat() in forever["detail"]
    later = await new_api_key(
        gateway, as_temp, **narrow, expires_at=(ends + timedelta(seconds=1)).isoformat()
    )
    assert fields_of(problem(later, 403)) == [("body", "expires_at")]
    # Ending with the caller, or before, is fine.
    for end in (ends, ends - timedelta(hours=1)):
        made = await new_api_key(gateway, as_temp, **narrow, expires_at=end.isoformat())
        assert made.status_code == 201, made.text

    # Rotation hands out a working secret: not of a key that outlives the caller
    # (reading it, or revoking it, hands out nothing).
    lasting = (await new_api_key(gateway, BOOTSTRAP, **narrow)).json()
    rotated = problem(
        await gateway.post(f"/v1/api-keys/{lasting['id']}/rotate", headers=as_temp), 403
    )
    assert fields_of(rotated) == [("path", "expires_at")]
    assert "secret" not in rotated
    assert (await gateway.get(f"/v1/api-keys/{lasting['id']}", headers=as_temp)).is_success

    # A mapping never expires: an expiring caller grants none, nor changes one.
    grant = {"match": "subject", "value": "contractor", "roles": ["moderator"]}
    mapped = problem(await gateway.post("/v1/agent-mappings", json=grant, headers=as_temp), 403)
    assert fields_of(mapped) == [("body", "expires_at")]
    made = await gateway.post("/v1/agent-mappings", json=grant, headers=BOOTSTRAP)
    assert made.status_code == 201, made.text
    url = f"/v1/agent-mappings/{made.json()['id']}"
    changed = await gateway.patch(
        url, json={"roles": ["moderator"]}, headers=as_temp | {"If-Match": made.headers["etag"]}
    )
    assert fields_of(problem(changed, 403)) == [("body", "expires_at")]
    assert (await gateway.delete(url, headers=as_temp)).status_code == 204

    # Its own rotation is no longer-lived than itself.
    own = await gateway.post(f"/v1/api-keys/{temp.json()['id']}/rotate", headers=as_temp)
    assert own.status_code == 200, own.text

    # Agents are people signed in for a session: their token's exp is not the
    # grant's end (their mapping is), so they are not held to it.
    boss = {"match": "subject", "value": "boss", "roles": ["programme_admin"]}
    assert (await gateway.post("/v1/agent-mappings", json=boss, headers=BOOTSTRAP)).is_success
    as_agent = {"Authorization": f"Bearer {idp.token('boss')}"}
    by_agent = await new_api_key(gateway, as_agent, **narrow)
    assert by_agent.status_code == 201, by_agent.text
    assert by_agent.json()["expires_at"] is None


# --- If-Match: every line, its syntax, a strong comparison -------------------------------


async def test_if_match_is_read_whole_and_strong_through_the_gateway(
    gateway: httpx.AsyncClient,
) -> None:
    made = await gateway.post(
        "/v1/agent-mappings",
        json={"match": "subject", "value": "etags", "roles": ["moderator"]},
        headers=BOOTSTRAP,
    )
    assert made.status_code == 201, made.text
    site = await gateway.post(
        "/v1/sites",
        json={"network": "caf", "external_code": "ETAGS-1", "name": "Caf - Bron"},
        headers=BOOTSTRAP,
    )
    assert site.status_code == 201, site.text
    writes = [
        (f"/v1/agent-mappings/{made.json()['id']}", {"roles": ["moderator"]}, made),
        (f"/v1/sites/{site.json()['id']}", {"name": "Caf - Bron"}, site),
    ]
    for path, body, created in writes:
        headers = list(BOOTSTRAP.items())
        # It was: 200 (the second line never read, * alone on the first).
        two = await gateway.patch(
            path, json=body, headers=[*headers, ("If-Match", "*"), ("If-Match", '"nope"')]
        )
        assert problem(two, 400)["detail"].startswith("If-Match"), path
        # It was: 200 for both.
        problem(await gateway.patch(path, json=body, headers=BOOTSTRAP | {"If-Match": "W/*"}), 400)
        weak = BOOTSTRAP | {"If-Match": f"W/{created.headers['etag']}"}
        problem(await gateway.patch(path, json=body, headers=weak), 412)
        strong = BOOTSTRAP | {"If-Match": created.headers["etag"]}
        assert (await gateway.patch(path, json=body, headers=strong)).status_code == 200, path


async def test_every_write_that_needs_if_match_declares_428(
    gateway: httpx.AsyncClient, sites_app: FastAPI
) -> None:
    """It was: 200, 400...412...422 declared, never 428 (PROBLEM_RESPONSES
    filtered on a status its table lacked), though these answer it."""
    required = {
        ("patch", "/v1/sites/{ref}"),
        ("patch", "/v1/networks/{code}"),
        ("patch", "/v1/agent-mappings/{mapping_id}"),
    }
    merged = (await gateway.get("/openapi.json")).json()
    for spec in (merged, sites_app.openapi()):
        taking = {
            (method, path)
            for path, item in spec["paths"].items()
            for method, op in item.items()
            if any(
                p["in"] == "header" and p["name"] == "if-match" for p in op.get("parameters", [])
            )
        }
        assert {w for w in required if w[1] in spec["paths"]} <= taking
        for method, path in taking:
            responses = spec["paths"][path][method]["responses"]
            assert {"412", "428"} <= set(responses), (method, path)
            assert "Problem" in str(responses["428"]), (method, path)
    assert required <= {(m, p) for p, item in merged["paths"].items() for m in item if m == "patch"}
    # A 428 is a problem with its own type, like every other status.
    missing = await gateway.patch("/v1/networks/caf", json={"name": "Caf"}, headers=BOOTSTRAP)
    assert problem(missing, 428)["type"].endswith("precondition-required")


def test_escalation_issues() -> None:
    unscoped = ADMIN
    scoped = ADMIN.model_copy(update={"scopes": ["api-keys:manage"]})
    kwargs: dict[str, Any] = {"network": None, "sites": []}
    assert escalation_issues(unscoped, roles=[Role.programme_admin], **kwargs) == []
    assert escalation_issues(scoped, roles=[Role.programme_admin], **kwargs) != []
    assert (
        escalation_issues(
            scoped, roles=[Role.programme_admin], scopes=["api-keys:manage"], **kwargs
        )
        == []
    )
    # Public actions are everyone's: a scope naming one hands out nothing.
    assert escalation_issues(scoped, roles=[Role.moderator], scopes=["sites:read"], **kwargs) == []
    # A network-wide grant reaches its own network only, never another one.
    manager = Principal(
        subject="m", kind=PrincipalKind.api_key, roles=[Role.network_manager], network="caf"
    )
    assert escalation_issues(manager, roles=[Role.network_manager], network="caf", sites=[]) == []
    assert escalation_issues(manager, roles=[Role.network_manager], network="cpam", sites=[])
    assert escalation_issues(manager, roles=[Role.agent], network="caf", sites=["S1"])
    agent = Principal(subject="a", kind=PrincipalKind.agent, roles=[Role.agent], sites=["S1"])
    assert escalation_issues(agent, roles=[Role.agent], network=None, sites=["S1"]) == []
    assert escalation_issues(agent, roles=[Role.agent], network=None, sites=["S1", "S2"])


async def test_the_store_refuses_escalation_whoever_calls_it(gateway_database: Database) -> None:
    """The command line and the API share the use cases: the rule is there."""
    keys = ApiKeyStore(gateway_database, cache_seconds=5, last_used_resolution=60)
    agents = AgentDirectory(gateway_database, cache_seconds=5)
    scoped = ADMIN.model_copy(update={"scopes": ["agent-mappings:manage"]})
    async with gateway_database.sessionmaker() as session, session.begin():
        with pytest.raises(Forbidden):
            await keys.create_key(
                session, scoped, ApiKeyCreate(name="x", owner="y", roles=[Role.service])
            )
        made = await agents.create_mapping(
            session,
            ADMIN,
            AgentMappingCreate(match="subject", value="s", roles=[Role.agent], network="caf"),
        )
        with pytest.raises(Forbidden):
            await agents.patch_mapping(
                session,
                scoped,
                made.id,
                AgentMappingPatch(roles=[Role.programme_admin]),
                f'"{made.id}.1"',
            )
    await keys.close()


# --- revocation while a read of the key is in flight ------------------------------------


def _gated(
    monkeypatch: pytest.MonkeyPatch, target: Any, name: str
) -> tuple[asyncio.Event, asyncio.Event]:
    """Make the first call of ``target.name`` read the database, then wait for the
    returned gate before answering: a read that straddles a change. The second
    event is set once that read is parked at the gate."""
    real = getattr(target, name)
    gate = asyncio.Event()
    parked = asyncio.Event()
    calls = 0

    async def gated(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        result = await real(*args, **kwargs)
        if calls == 1:
            parked.set()
            await gate.wait()
        return result

    monkeypatch.setattr(target, name, gated)
    return gate, parked


async def test_a_key_revoked_while_its_read_is_in_flight_is_refused_at_once(
    gateway_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ApiKeyStore(gateway_database, cache_seconds=5, last_used_resolution=60)
    async with gateway_database.sessionmaker() as session, session.begin():
        created = await store.create_key(
            session, ADMIN, ApiKeyCreate(name="x", owner="y", roles=[Role.service])
        )
    store.forget(created.id)
    gate, parked = _gated(monkeypatch, repository, "get_api_key")

    before = asyncio.create_task(store.authenticate(created.secret))
    await asyncio.wait_for(parked.wait(), 10)  # its read has the row as it was
    async with gateway_database.sessionmaker() as session, session.begin():
        await store.revoke_key(session, ADMIN, created.id)
    # The revocation was answered: a request arriving now must not ride on
    # the read that started before it (it was let in, with the old row).
    after = asyncio.create_task(store.authenticate(created.secret))
    await asyncio.sleep(0.05)
    gate.set()
    assert await after is None
    await before  # started before the revocation: may go either way
    assert await store.authenticate(created.secret) is None
    await store.close()


async def test_an_agent_whose_mapping_is_deleted_during_a_read_loses_it_at_once(
    gateway_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    agents = AgentDirectory(gateway_database, cache_seconds=5)
    async with gateway_database.sessionmaker() as session, session.begin():
        made = await agents.create_mapping(
            session,
            ADMIN,
            AgentMappingCreate(
                match="subject", value="agent-7", roles=[Role.network_manager], network="caf"
            ),
        )
    gate, parked = _gated(monkeypatch, repository, "find_mappings")

    def sign_in() -> Any:
        return agents.principal_for(
            subject="agent-7", email=None, email_domain=None, siret=None, uid=None
        )

    before = asyncio.create_task(sign_in())
    await asyncio.wait_for(parked.wait(), 10)
    async with gateway_database.sessionmaker() as session, session.begin():
        await agents.delete_mapping(session, ADMIN, made.id)
    after = asyncio.create_task(sign_in())
    await asyncio.sleep(0.05)
    gate.set()
    assert (await after).roles == []
    await before


# --- cache flushing by unknown keys --------------------------------------------------------


async def test_unknown_keys_do_not_push_real_keys_out_of_the_cache(
    gateway_database: Database,
) -> None:
    store = ApiKeyStore(
        gateway_database, cache_seconds=60, last_used_resolution=60, cache_entries=4
    )
    secrets = []
    async with gateway_database.sessionmaker() as session, session.begin():
        for i in range(3):
            made = await store.create_key(
                session, ADMIN, ApiKeyCreate(name=f"k{i}", owner="y", roles=[Role.service])
            )
            secrets.append(made.secret)
    for secret in secrets:
        assert await store.authenticate(secret) is not None

    # Anyone can present well-formed keys with random ids, as many as they like.
    for _ in range(50):
        assert await store.authenticate(new_key(new_key_id())) is None

    reads: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        reads.append(statement)

    event.listen(gateway_database.read_engine.sync_engine, "before_cursor_execute", count)
    try:
        for secret in secrets:
            assert await store.authenticate(secret) is not None
    finally:
        event.remove(gateway_database.read_engine.sync_engine, "before_cursor_execute", count)
    assert [s for s in reads if "api_keys" in s] == []  # all three still cached
    # ...and an unknown id is not read again within the cache time either.
    unknown = new_key(new_key_id())
    assert await store.authenticate(unknown) is None
    assert await store.authenticate(unknown) is None
    assert len(store._unknown) <= 4
    await store.close()


async def test_a_forgotten_unknown_id_is_read_again(
    gateway_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unknown ids are cached apart; forgetting an id forgets it there too."""
    store = ApiKeyStore(gateway_database, cache_seconds=60, last_used_resolution=60)
    other = ApiKeyStore(gateway_database, cache_seconds=60, last_used_resolution=60)
    key_id = new_key_id()
    assert await store.authenticate(new_key(key_id)) is None
    monkeypatch.setattr(api_keys_module, "new_key_id", lambda: key_id)
    async with gateway_database.sessionmaker() as session, session.begin():
        made = await other.create_key(
            session, ADMIN, ApiKeyCreate(name="x", owner="y", roles=[Role.service])
        )
    assert await store.authenticate(made.secret) is None  # unknown here, for the cache time
    store.forget(key_id)
    assert await store.authenticate(made.secret) is not None
    await store.close()
    await other.close()


# --- 500s on bad input -------------------------------------------------------------------


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        # Aware datetimes with no UTC equivalent: OverflowError when bound (500).
        ("GET", "/v1/audit-events?since=0001-01-01T00:00:00%2B01:00", None, 422),
        ("GET", "/v1/audit-events?until=9999-12-31T23:59:59-01:00", None, 422),
        (
            "GET",
            "/v1/audit-events?cursor=" + _cursor(["9999-12-31T23:59:59-01:00", "x"]),
            None,
            400,
        ),
        ("GET", "/v1/api-keys?cursor=" + _cursor(["0001-01-01T00:00:00+01:00", "x"]), None, 400),
        (
            "POST",
            "/v1/api-keys",
            {
                "name": "x",
                "owner": "y",
                "roles": ["service"],
                "expires_at": "9999-12-31T23:59:59-01:00",
            },
            422,
        ),
        # NUL in what is compared with a column: PostgreSQL refuses it (500).
        ("GET", "/v1/api-keys?owner=a%00", None, 422),
        ("GET", "/v1/audit-events?actor=%00", None, 422),
        ("GET", "/v1/audit-events?action=x%00", None, 422),
        ("GET", "/v1/api-keys/a%00b", None, 404),
        ("POST", "/v1/api-keys/%00/rotate", None, 404),
        ("DELETE", "/v1/api-keys/aaaaaaaaaaa%00", None, 404),
        ("GET", "/v1/agent-mappings/x%00", None, 404),
        ("PATCH", "/v1/agent-mappings/x%00", {"roles": ["agent"]}, 404),
        ("DELETE", "/v1/agent-mappings/x%00", None, 404),
    ],
)
async def test_admin_inputs_the_database_cannot_take_are_client_errors(
    admin: Admin, method: str, path: str, body: Any, status: int
) -> None:
    headers = as_principal("admin") | {"If-Match": "*"}
    resp = await admin.client.request(method, path, json=body, headers=headers)
    assert "\x00" not in problem(resp, status)["detail"]


async def test_the_gateway_refuses_control_characters_before_its_own_resources(
    gateway: httpx.AsyncClient,
) -> None:
    for path in (
        "/v1/api-keys?owner=%00",
        "/v1/audit-events?actor=x%00",
        "/v1/api-keys/%00",
        "/v1/agent-mappings/a%1fb",
    ):
        assert problem(await gateway.get(path, headers=BOOTSTRAP), 400)["detail"].startswith(
            "The path or the query string contains control characters"
        )
    assert (await gateway.get("/v1/api-keys?owner=caf%20dsi", headers=BOOTSTRAP)).status_code == 200


async def test_a_whole_key_sent_as_an_id_is_not_echoed(gateway: httpx.AsyncClient) -> None:
    created = (await new_api_key(gateway, BOOTSTRAP, roles=["service"])).json()
    for method, path in (
        ("GET", f"/v1/api-keys/{created['secret']}"),
        ("POST", f"/v1/api-keys/{created['secret']}/rotate"),
        ("DELETE", f"/v1/api-keys/{created['secret']}"),
    ):
        resp = await gateway.request(method, path, headers=BOOTSTRAP)
        # The detail once quoted it back; ``instance`` is the path the client
        # sent (where it put the key itself).
        detail = problem(resp, 404)["detail"]
        assert created["secret"][len("spp_") + 12 + 1 :] not in detail  # the secret part
        assert "never by the key itself" in detail


# --- agents' tokens ------------------------------------------------------------------------


@pytest.mark.parametrize("sub", ["x\x00y", "tab\there", "a" * 256, " padded", "", 42])
async def test_agent_subjects_no_provider_issues_are_refused(
    gateway: httpx.AsyncClient, idp: Idp, sub: Any
) -> None:
    # It was, on PostgreSQL: 503 (the mapping look-up failed on the NUL) for a
    # correctly signed token; elsewhere the subject went into assertions and
    # the audit log.
    token = idp.token(sub)
    resp = await gateway.post(
        "/v1/sites/lookup", json={"ids": []}, headers={"Authorization": f"Bearer {token}"}
    )
    assert problem(resp, 401)["detail"] == "The agent token is not valid (malformed)."


async def test_a_255_character_subject_is_an_agent(gateway: httpx.AsyncClient, idp: Idp) -> None:
    token = idp.token("s" * 255)
    resp = await gateway.get("/v1/networks?limit=1", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.text


async def test_an_unverified_email_matches_no_mapping(idp: Idp) -> None:
    verifier = OidcVerifier(
        OidcConfig(issuer=ISSUER, audience=AUDIENCE, jwks_url=f"{idp.url}/jwks.json")
    )
    async with aiohttp.ClientSession() as session:
        unverified = await verifier.verify(
            idp.token("a", email="boss@caf.fr", email_verified=False), session
        )
        verified = await verifier.verify(
            idp.token("b", email="boss@caf.fr", email_verified=True), session
        )
        silent = await verifier.verify(idp.token("c", email="boss@caf.fr"), session)
        with pytest.raises(InvalidToken):
            await verifier.verify(idp.token("d\x7f"), session)
    assert (unverified.email, unverified.email_domain) == (None, None)
    assert verified.email_domain == silent.email_domain == "caf.fr"


# --- the audit log ---------------------------------------------------------------------------


async def test_requests_with_control_characters_are_still_audited(
    gateway_database: Database,
) -> None:
    """A NUL in the actor or the path made the insert fail on PostgreSQL, and
    the event was dropped: a way to probe without leaving a trace."""
    odd = Principal(subject="agent:x\x00y", kind=PrincipalKind.agent)
    recorded = await record_request(
        gateway_database,
        actor=odd,
        method="PATCH",
        path="/v1/sites/abc\x00\n",
        status=400,
        request_id="rid\x00",
    )
    assert recorded
    async with gateway_database.read_sessionmaker() as session:
        row = (await session.scalars(select(AuditEvent))).one()
    assert (row.actor, row.target, row.request_id) == (
        "agent:x\\x00y",
        "/v1/sites/abc\\x00\\n",
        "rid\\x00",
    )


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin", ["https://*.gouv.fr", "https://front.gouv.fr:99999", "https://front.gouv.fr:port"]
)
def test_cors_origins_that_match_no_browser_are_refused(origin: str) -> None:
    with pytest.raises(ValidationError):
        GatewaySettings(cors_origins=[origin])
    assert GatewaySettings(cors_origins=["https://front.gouv.fr:8443"]).cors_origins == [
        "https://front.gouv.fr:8443"
    ]


def test_every_manage_action_is_admin_only() -> None:
    """escalation_issues leans on it: only programme admins manage credentials,
    so a grant it compares is never wider than 'any'."""
    for action in GatewayAction:
        assert set(action.grants) == {Role.programme_admin}

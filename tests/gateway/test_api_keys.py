"""API keys: format, authentication (cache, revocation, expiry, rotation), admin API, CLI."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from spp_gateway import __main__ as cli
from spp_gateway.models import ApiKey
from spp_gateway.store import api_keys as api_keys_module
from spp_gateway.store import repository
from spp_gateway.store.api_keys import ApiKeyStore
from spp_gateway.store.cache import MISSING, TTLCache
from spp_gateway.store.grants import grant_issues
from spp_gateway.store.keys import KEY_LENGTH, hash_key, new_key, new_key_id, parse_key
from spp_shared.contracts.access import AGENT_ROLES, API_KEY_ROLES, GatewayAction
from spp_shared.contracts.permissions import Role
from spp_shared.kit.db import Database
from spp_shared.kit.identity import PrincipalKind
from tests.support import ServiceDB

from .conftest import Admin, as_principal

pytestmark = pytest.mark.anyio

ADMIN = as_principal("admin")
MANAGER_KEY = {"name": "Import Caf", "owner": "Cnaf DSI", "roles": ["network_manager"]}


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def create_key(admin: Admin, **overrides: Any) -> dict[str, Any]:
    body = {**MANAGER_KEY, "network": "caf", **overrides}
    resp = await admin.client.post("/v1/api-keys", json=body, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


def other_process(db: Database, clock: Clock, **kw: Any) -> ApiKeyStore:
    """A store as another gateway process would have it (its own cache)."""
    return ApiKeyStore(db, cache_seconds=5.0, last_used_resolution=60.0, clock=clock, **kw)


# --- the key format -------------------------------------------------------------------


def test_key_format_and_parsing() -> None:
    key_id = new_key_id()
    key = new_key(key_id)
    assert len(key) == KEY_LENGTH == 60
    assert key.startswith(f"spp_{key_id}_")
    assert parse_key(key) == (key_id, key)
    assert len({new_key_id() for _ in range(100)}) == 100
    refused = [
        "",
        key[:-1],
        key + "x",
        " " + key[1:],
        key.replace("spp_", "spq_"),
        "spp_" + key_id.upper() + key[16:],  # base32 ids are lower-case
        "spp_" + key_id[:11] + "1" + key[16:],  # 1 is not base32
        key[:16] + "-" + key[17:],  # the separator
        key[:-1] + "=",
        key[:-1] + "\n",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU",
    ]
    for text_ in refused:
        assert parse_key(text_) is None, text_


def test_grant_rules() -> None:
    def fields(**kw: Any) -> list[str]:
        base: dict[str, Any] = {"roles": [], "network": None, "sites": []}
        return [i.field for i in grant_issues(**(base | kw))]

    assert fields(roles=[Role.programme_admin]) == []
    assert fields(roles=[Role.public]) == ["roles"]
    assert fields(roles=[Role.citizen_author]) == ["roles"]
    assert fields(roles=[Role.service], allowed_roles=AGENT_ROLES) == ["roles"]
    assert fields(roles=[Role.service], allowed_roles=API_KEY_ROLES) == []
    assert fields(roles=[Role.network_manager]) == ["network"]
    assert fields(roles=[Role.network_manager], network="caf") == []
    assert fields(roles=[Role.agent]) == ["network"]
    assert fields(roles=[Role.agent], sites=["3Tn8gzTdcz"]) == []
    assert fields(roles=[Role.agent], network="caf") == []
    assert fields(roles=[Role.network_manager], network="caf", sites=["X"]) == ["sites"]
    # Scopes narrow: one no role grants is a mistake; public ones are harmless.
    assert fields(roles=[Role.network_manager], network="caf", scopes=["sites:import"]) == []
    assert fields(roles=[Role.network_manager], network="caf", scopes=["api-keys:manage"]) == [
        "scopes"
    ]
    assert fields(roles=[Role.agent], network="caf", scopes=["sites:read"]) == []
    assert fields(roles=[Role.agent], network="caf", scopes=["nope"]) == ["scopes"]
    now = datetime.now(UTC)
    past = now - timedelta(seconds=1)
    assert fields(roles=[Role.moderator], expires_at=past, now=now) == ["expires_at"]
    assert fields(roles=[Role.moderator], expires_at=now + timedelta(days=1), now=now) == []


def test_ttl_cache_bounds_and_expiry() -> None:
    clock = Clock()
    cache: TTLCache[str, int | None] = TTLCache(ttl=5, max_entries=3, clock=clock)
    for i in range(5):
        cache.put(f"k{i}", i)
    assert len(cache) == 3
    assert cache.get("k0") is MISSING  # least recently used went first
    assert cache.get("k2") == 2
    cache.put("k5", None)  # a cached "unknown" is not a miss
    assert cache.get("k5") is None
    assert cache.get("k3") is MISSING  # k2 was used since, k3 was not
    clock.now += 5
    assert cache.get("k2") is MISSING
    off: TTLCache[str, int] = TTLCache(ttl=0, max_entries=3, clock=clock)
    off.put("a", 1)
    assert off.get("a") is MISSING


# --- the admin API --------------------------------------------------------------------


async def test_create_shows_the_secret_once(admin: Admin) -> None:
    resp = await admin.client.post(
        "/v1/api-keys",
        json={**MANAGER_KEY, "network": "caf", "scopes": ["sites:import", "sites:import"]},
        headers=ADMIN,
    )
    assert resp.status_code == 201, resp.text
    created = resp.json()
    secret = created["secret"]
    assert parse_key(secret) == (created["id"], secret)
    assert created["prefix"] == f"spp_{created['id']}"
    assert secret.startswith(created["prefix"] + "_")
    assert resp.headers["location"] == f"/v1/api-keys/{created['id']}"
    assert resp.headers["cache-control"] == "no-store"
    assert created["scopes"] == ["sites:import"]
    assert created["created_by"] == "bootstrap-admin"
    assert created["revoked_at"] is None

    got = await admin.client.get(f"/v1/api-keys/{created['id']}", headers=ADMIN)
    listed = await admin.client.get("/v1/api-keys", headers=ADMIN)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    for answer in (got, listed):
        assert answer.status_code == 200
        assert secret[17:] not in answer.text
        assert digest not in answer.text
        assert "secret" not in answer.text
    assert got.json() == {k: v for k, v in created.items() if k != "secret"}
    assert [k["id"] for k in listed.json()["items"]] == [created["id"]]


async def test_the_stored_row_holds_no_secret(admin: Admin) -> None:
    created = await create_key(admin)
    secret = created["secret"]
    async with admin.db.read_sessionmaker() as session:
        row = (await session.execute(text("SELECT * FROM api_keys"))).mappings().one()
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest() == hash_key(secret)
    for value in row.values():
        assert secret[17:] not in str(value)


async def test_authenticate(admin: Admin) -> None:
    created = await create_key(admin, scopes=["sites:import"])
    store = admin.api_keys
    principal = await store.authenticate(created["secret"])
    assert principal is not None
    assert principal.subject == f"api_key:{created['id']}"
    assert principal.kind is PrincipalKind.api_key
    assert principal.roles == [Role.network_manager]
    assert principal.scopes == ["sites:import"]
    assert principal.network == "caf"
    # The row is cached now: a wrong secret for this real id still fails.
    wrong = created["secret"][:-3] + ("AAA" if not created["secret"].endswith("AAA") else "BBB")
    assert await store.authenticate(wrong) is None
    assert await store.authenticate(new_key(created["id"])) is None
    assert await store.authenticate(new_key(new_key_id())) is None  # unknown id
    assert await store.authenticate("not a key") is None
    assert await store.authenticate(created["secret"]) is not None


async def test_revocation_is_immediate_here_and_bounded_elsewhere(admin: Admin) -> None:
    created = await create_key(admin)
    secret = created["secret"]
    clock = Clock()
    elsewhere = other_process(admin.db, clock)
    assert await admin.api_keys.authenticate(secret) is not None  # cached here
    assert await elsewhere.authenticate(secret) is not None  # and there

    resp = await admin.client.delete(f"/v1/api-keys/{created['id']}", headers=ADMIN)
    assert resp.status_code == 200
    assert resp.json()["revoked_at"] is not None
    assert await admin.api_keys.authenticate(secret) is None  # this process: at once
    assert await elsewhere.authenticate(secret) is not None  # another: within its cache time
    clock.now += 5
    assert await elsewhere.authenticate(secret) is None
    await elsewhere.close()

    again = await admin.client.delete(f"/v1/api-keys/{created['id']}", headers=ADMIN)
    assert again.status_code == 200
    assert again.json()["revoked_at"] == resp.json()["revoked_at"]
    rotate = await admin.client.post(f"/v1/api-keys/{created['id']}/rotate", headers=ADMIN)
    assert rotate.status_code == 409
    assert rotate.headers["content-type"] == "application/problem+json"


async def test_expiry_is_checked_on_every_call(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    created = await create_key(admin, expires_at=expires.isoformat())
    assert await admin.api_keys.authenticate(created["secret"]) is not None  # cached now
    later = expires + timedelta(seconds=1)
    monkeypatch.setattr(api_keys_module, "now", lambda: later)
    assert await admin.api_keys.authenticate(created["secret"]) is None


async def test_rotation(admin: Admin) -> None:
    created = await create_key(admin)
    old = created["secret"]
    assert await admin.api_keys.authenticate(old) is not None
    resp = await admin.client.post(f"/v1/api-keys/{created['id']}/rotate", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    rotated = resp.json()
    new = rotated["secret"]
    assert rotated["id"] == created["id"]
    assert new != old
    assert rotated["rotated_at"] is not None
    assert await admin.api_keys.authenticate(old) is None
    principal = await admin.api_keys.authenticate(new)
    assert principal is not None
    assert principal.subject == f"api_key:{created['id']}"


async def test_last_used_is_recorded_at_most_once_per_resolution(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await create_key(admin)
    writes: list[str] = []
    touch = repository.touch_api_key

    async def counting(*args: Any, **kwargs: Any) -> None:
        writes.append(args[1])
        await touch(*args, **kwargs)

    monkeypatch.setattr(repository, "touch_api_key", counting)
    clock = Clock()
    store = other_process(admin.db, clock)
    for _ in range(5):
        assert await store.authenticate(created["secret"]) is not None
    await store.close()
    assert writes == [created["id"]]

    async def last_used() -> datetime | None:
        async with admin.db.read_sessionmaker() as session:
            value: datetime | None = await session.scalar(
                select(ApiKey.last_used_at).where(ApiKey.id == created["id"])
            )
            return value

    first = await last_used()
    assert first is not None
    got = await admin.client.get(f"/v1/api-keys/{created['id']}", headers=ADMIN)
    assert got.json()["last_used_at"] is not None

    later = datetime.now(UTC) + timedelta(seconds=61)
    monkeypatch.setattr(api_keys_module, "now", lambda: later)
    clock.now += 61
    assert await store.authenticate(created["secret"]) is not None
    await store.close()
    assert writes == [created["id"]] * 2
    second = await last_used()
    assert second is not None
    assert second > first


async def test_last_used_does_not_wait_for_the_database(admin: Admin) -> None:
    created = await create_key(admin)
    store = other_process(admin.db, Clock())
    assert await store.authenticate(created["secret"]) is not None
    assert len(store._tasks) == 1  # the write runs in the background
    await store.close()
    assert not store._tasks


async def test_the_cache_is_bounded(admin: Admin) -> None:
    keys = [await create_key(admin, name=f"key {i}") for i in range(5)]
    store = other_process(admin.db, Clock(), cache_entries=3)
    for key in keys:
        assert await store.authenticate(key["secret"]) is not None
    for _ in range(10):
        assert await store.authenticate(new_key(new_key_id())) is None
    assert store.cached == 3
    await store.close()


async def test_a_database_it_cannot_read_is_an_error_not_a_refusal(tmp_path: Any) -> None:
    from spp_gateway.store import StoreUnavailable

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    store = ApiKeyStore(db, cache_seconds=5, last_used_resolution=60)
    with pytest.raises(StoreUnavailable):
        await store.authenticate(new_key(new_key_id()))
    await db.dispose()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"roles": ["network_manager"]}, "network"),
        ({"roles": ["agent"]}, "network"),
        ({"roles": ["public"], "network": "caf"}, "roles"),
        ({"roles": ["citizen_author"]}, "roles"),
        ({"roles": ["moderator"], "sites": ["3Tn8gzTdcz"]}, "sites"),
        ({"roles": ["moderator"], "scopes": ["sites:import"]}, "scopes"),
        ({"roles": ["moderator"], "scopes": ["sites:explode"]}, "scopes.0"),
        ({"roles": ["moderator"], "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"roles": ["moderator"], "expires_at": "2099-01-01T00:00:00"}, "expires_at"),
        ({"roles": []}, "roles"),
        ({"roles": ["moderator"], "name": "two\nlines"}, "name"),
        ({"roles": ["moderator"], "network": "Not A Code!"}, "network"),
        ({"roles": ["moderator"], "secret": "mine"}, "secret"),
    ],
)
async def test_invalid_keys_are_422_naming_the_field(
    admin: Admin, body: dict[str, Any], field: str
) -> None:
    resp = await admin.client.post("/v1/api-keys", json={**MANAGER_KEY, **body}, headers=ADMIN)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in resp.json()["errors"]]
    async with admin.db.read_sessionmaker() as session:
        assert (await session.execute(text("SELECT count(*) FROM api_keys"))).scalar() == 0


async def test_unknown_ids_are_404(admin: Admin) -> None:
    for method, path in [
        ("GET", "/v1/api-keys/aaaaaaaaaaaa"),
        ("POST", "/v1/api-keys/aaaaaaaaaaaa/rotate"),
        ("DELETE", "/v1/api-keys/aaaaaaaaaaaa"),
    ]:
        resp = await admin.client.request(method, path, headers=ADMIN)
        assert resp.status_code == 404, (method, path)
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["type"].endswith("/api-key-not-found")


async def test_list_filters_and_pages(admin: Admin) -> None:
    made = [await create_key(admin, name=f"caf {i}") for i in range(4)]
    made.append(await create_key(admin, name="cpam", network="cpam", owner="Cnam"))
    await admin.client.delete(f"/v1/api-keys/{made[0]['id']}", headers=ADMIN)

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await admin.client.get("/v1/api-keys", params=params, headers=ADMIN)).json()
        seen += [k["id"] for k in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(k["id"] for k in made[1:])  # revoked ones hidden
    assert len(seen) == len(set(seen))

    def ids(params: dict[str, Any]) -> Any:
        return admin.client.get("/v1/api-keys", params=params, headers=ADMIN)

    assert len((await ids({"include_revoked": True})).json()["items"]) == 5
    assert [k["id"] for k in (await ids({"owner": "Cnam"})).json()["items"]] == [made[4]["id"]]
    assert len((await ids({"network": "caf"})).json()["items"]) == 3
    bad = await ids({"cursor": "garbage"})
    assert bad.status_code == 400


# --- who may call ---------------------------------------------------------------------

MAPPING_ID = "01J0000000000000000000000A"
ADMIN_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/v1/api-keys", {**MANAGER_KEY, "network": "caf"}),
    ("GET", "/v1/api-keys", None),
    ("GET", "/v1/api-keys/aaaaaaaaaaaa", None),
    ("POST", "/v1/api-keys/aaaaaaaaaaaa/rotate", None),
    ("DELETE", "/v1/api-keys/aaaaaaaaaaaa", None),
    (
        "POST",
        "/v1/agent-mappings",
        {"match": "email_domain", "value": "caf.fr", "roles": ["agent"], "network": "caf"},
    ),
    ("GET", "/v1/agent-mappings", None),
    ("GET", f"/v1/agent-mappings/{MAPPING_ID}", None),
    ("PATCH", f"/v1/agent-mappings/{MAPPING_ID}", {"roles": ["moderator"]}),
    ("DELETE", f"/v1/agent-mappings/{MAPPING_ID}", None),
    ("GET", "/v1/audit-events", None),
]


def test_every_admin_route_is_listed_here() -> None:
    from spp_gateway.admin import router
    from spp_shared.kit.permissions import api_routes, declared_actions

    declared = {(m, r.path) for r in api_routes(router.routes) for m in r.methods}
    listed = {
        (m, p.replace("aaaaaaaaaaaa", "{key_id}").replace(MAPPING_ID, "{mapping_id}"))
        for m, p, _ in ADMIN_ROUTES
    }
    assert declared == listed
    admin_actions = set(GatewayAction)
    for route in api_routes(router.routes):
        actions = declared_actions(route)
        assert len(actions) == 1, route.path
        assert actions[0] in admin_actions


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_admin_routes_refuse_everyone_but_admins(
    admin: Admin, method: str, path: str, body: dict[str, Any] | None
) -> None:
    for who, status in [("anonymous", 401), (None, 401), ("manager", 403), ("agent", 403)]:
        headers = as_principal(who) if who else {}
        resp = await admin.client.request(method, path, json=body, headers=headers)
        assert resp.status_code == status, (who, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
    async with admin.db.read_sessionmaker() as session:
        for table in ("api_keys", "agent_mappings", "audit_events"):
            count = (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
            assert count == 0, table


# --- the command line -----------------------------------------------------------------


@pytest.fixture
def cli_db(gateway_db: ServiceDB, monkeypatch: pytest.MonkeyPatch) -> ServiceDB:
    # A sync fixture and sync tests: the commands run their own event loop.
    asyncio.run(gateway_db.reset())
    monkeypatch.setenv("SPP_GATEWAY_DATABASE_URL", gateway_db.url)
    return gateway_db


def authenticate_with(url: str, secret: str) -> Any:
    async def run() -> Any:
        db = Database(url)
        store = ApiKeyStore(db, cache_seconds=0, last_used_resolution=60)
        try:
            return await store.authenticate(secret)
        finally:
            await store.close()
            await db.dispose()

    return asyncio.run(run())


def test_cli_create_list_rotate_revoke(
    cli_db: ServiceDB, capsys: pytest.CaptureFixture[str]
) -> None:
    cli.main(
        [
            "api-keys",
            "create",
            "--name",
            "Import nightly",
            "--owner",
            "Cnaf DSI",
            "--role",
            "network_manager",
            "--scope",
            "sites:import",
            "--network",
            "caf",
            "--expires-in-days",
            "30",
        ]
    )
    out, err = capsys.readouterr()
    secret, key_id = out.split()
    assert parse_key(secret) == (key_id, secret)
    assert "never shown again" in err
    principal = authenticate_with(cli_db.url, secret)
    assert principal is not None
    assert principal.network == "caf"
    assert principal.scopes == ["sites:import"]

    cli.main(["api-keys", "list"])
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("id\tprefix\tstatus")
    assert lines[1].startswith(f"{key_id}\tspp_{key_id}\tactive\tImport nightly\tCnaf DSI")
    assert secret[17:] not in out

    cli.main(["api-keys", "rotate", key_id])
    out, _ = capsys.readouterr()
    new_secret, same_id = out.split()
    assert same_id == key_id
    assert authenticate_with(cli_db.url, secret) is None
    assert authenticate_with(cli_db.url, new_secret) is not None

    cli.main(["api-keys", "revoke", key_id])
    out, _ = capsys.readouterr()
    assert out.startswith(f"revoked {key_id}")
    assert authenticate_with(cli_db.url, new_secret) is None
    cli.main(["api-keys", "list"])
    assert key_id not in capsys.readouterr().out
    cli.main(["api-keys", "list", "--include-revoked"])
    assert f"{key_id}\tspp_{key_id}\trevoked" in capsys.readouterr().out

    async def actions() -> list[tuple[str, str]]:
        db = Database(cli_db.url)
        try:
            async with db.read_sessionmaker() as session:
                rows = await session.execute(text("SELECT actor, action FROM audit_events"))
                return sorted((r[0], r[1]) for r in rows)
        finally:
            await db.dispose()

    assert asyncio.run(actions()) == [
        ("cli", "api_key.created"),
        ("cli", "api_key.revoked"),
        ("cli", "api_key.rotated"),
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--name", "x", "--owner", "o", "--role", "network_manager"], "--network"),
        (["--name", "x", "--owner", "o", "--role", "emperor"], "--role"),
        (["--name", "x", "--owner", "o", "--role", "agent", "--scope", "x:y"], "--scope"),
        *(
            (
                ["--name", "x", "--owner", "o", "--role", "moderator", "--expires-in-days", d],
                "--exp",
            )
            for d in ("-1", "1e9", "nan", "soon")
        ),
    ],
)
def test_cli_refuses_bad_keys_with_exit_code_2(
    cli_db: ServiceDB, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["api-keys", "create", *argv])
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "error: " in err
    assert message in err
    assert "Traceback" not in err


def test_cli_errors_are_messages(
    cli_db: ServiceDB,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    for argv in (["api-keys", "revoke", "aaaaaaaaaaaa"], ["api-keys", "rotate", "nope"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2
        assert "No API key has the id" in capsys.readouterr().err

    monkeypatch.setenv("SPP_GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")
    with pytest.raises(SystemExit) as exc:
        cli.main(["api-keys", "list"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "migrate" in err
    assert "Traceback" not in err

    cli.main(["migrate"])
    assert "migrated" in capsys.readouterr().out
    cli.main(["api-keys", "list"])
    assert capsys.readouterr().out.startswith("id\t")

    with pytest.raises(SystemExit) as exc:
        cli.main(["api-keys"])
    assert exc.value.code == 2


def test_cli_without_a_command_still_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(cli.uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    cli.main(["--port", "8123", "--workers", "2"])
    assert seen["app"] == "spp_gateway.app:create_app"
    assert seen["port"] == 8123
    assert seen["workers"] == 2


async def test_a_look_up_in_flight_during_a_revocation_caches_nothing(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await create_key(admin)
    store: ApiKeyStore = admin.api_keys
    read, release = asyncio.Event(), asyncio.Event()
    get = repository.get_api_key

    async def slow_get(*args: Any, **kwargs: Any) -> Any:
        row = await get(*args, **kwargs)
        if not kwargs.get("for_update"):
            read.set()
            await release.wait()
        return row

    monkeypatch.setattr(repository, "get_api_key", slow_get)
    in_flight = asyncio.create_task(store.authenticate(created["secret"]))
    await read.wait()  # it holds the row as it was before the revocation
    resp = await admin.client.delete(f"/v1/api-keys/{created['id']}", headers=ADMIN)
    assert resp.status_code == 200
    release.set()
    await in_flight  # concurrent with the revocation: either answer is fair
    monkeypatch.setattr(repository, "get_api_key", get)
    assert await store.authenticate(created["secret"]) is None


async def test_the_revoking_process_forgets_when_the_revocation_commits(admin: Admin) -> None:
    """A look-up between the revocation and its commit reads (and caches) the
    row as it still is; the commit forgets it again."""
    from spp_gateway.__main__ import CLI_ACTOR

    created = await create_key(admin)
    store: ApiKeyStore = admin.api_keys
    async with admin.db.sessionmaker() as session:
        async with session.begin():
            await store.revoke_key(session, CLI_ACTOR, created["id"])
            assert await store.authenticate(created["secret"]) is not None  # not committed yet
        assert await store.authenticate(created["secret"]) is None

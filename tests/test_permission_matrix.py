"""The permission matrix, cell by cell, against the running services.

For every action of every service (spp_shared.contracts.access.ACTIONS) and
every role, one
real request is made as a caller holding only that role: a granted cell must
succeed, a refused one must answer 401 (anonymous) or 403. Scoped grants are
checked at the object too: the same request on another network's object is
refused. A second test checks that every endpoint of every app declares
exactly one action, and that every action is used by some endpoint, so the
matrix and the API cannot drift apart.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from spp_shared.contracts.access import ACTIONS, GatewayAction
from spp_shared.contracts.indicators import IndicatorsAction
from spp_shared.contracts.jobs import JobsAction
from spp_shared.contracts.permissions import ROLES, Action, Role, Scope
from spp_shared.contracts.sites import SitesAction
from spp_shared.kit.db import Database
from spp_shared.kit.errors import install_problem_handlers
from spp_shared.kit.identity import ANONYMOUS, AssertionGuard, Principal, PrincipalKind
from spp_shared.kit.migrations import migrate_and_seed
from spp_shared.kit.permissions import api_routes, declared_actions, iter_cells, render_markdown
from tests.sites.fixtures import PARIS_12, VALSERHONE
from tests.support import TEST_VERIFIER, assertion_headers, serve_asgi

pytestmark = pytest.mark.anyio

OWN_NETWORK = "france-services"
OTHER_NETWORK = "caf"
_counter = itertools.count()


@dataclass
class World:
    """Running apps and the objects the cases act on."""

    clients: dict[str, httpx.AsyncClient]
    own_site: dict[str, Any] = field(default_factory=dict)
    other_site: dict[str, Any] = field(default_factory=dict)
    principals: dict[Role, Principal] = field(default_factory=dict)

    async def call(
        self, service: str, method: str, path: str, principal: Principal, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        headers.update(assertion_headers(principal))
        return await self.clients[service].request(method, path, headers=headers, **kwargs)

    async def etag(self, service: str, path: str) -> str:
        resp = await self.call(service, "GET", path, ADMIN)
        assert resp.status_code == 200, resp.text
        return resp.headers["etag"]


ADMIN = Principal(
    subject="matrix-admin", kind=PrincipalKind.bootstrap, roles=[Role.programme_admin]
)


def principal_for(role: Role, world: World) -> Principal:
    if role is Role.public:
        return ANONYMOUS
    return Principal(
        subject=f"matrix-{role.value}",
        kind=PrincipalKind.agent if role is Role.agent else PrincipalKind.api_key,
        roles=[role],
        network=OWN_NETWORK if role in (Role.agent, Role.network_manager) else None,
        sites=[world.own_site["id"]] if role is Role.agent else [],
    )


# A case makes one request as ``principal`` on the own (target="own") or the
# other network's (target="other") object.
Case = Callable[[World, Principal, str], Awaitable[httpx.Response]]


def _site(world: World, target: str) -> dict[str, Any]:
    return world.own_site if target == "own" else world.other_site


async def _networks_read(w: World, p: Principal, target: str) -> httpx.Response:
    return await w.call("sites", "GET", f"/v1/networks/{OWN_NETWORK}", p)


async def _networks_create(w: World, p: Principal, target: str) -> httpx.Response:
    body = {"code": f"matrix-{next(_counter)}", "name": "Réseau de test"}
    return await w.call("sites", "POST", "/v1/networks", p, json=body)


async def _networks_update(w: World, p: Principal, target: str) -> httpx.Response:
    path = f"/v1/networks/{OWN_NETWORK}"
    tag = await w.etag("sites", path)
    body = {"website": f"https://example.fr/{next(_counter)}"}
    return await w.call("sites", "PATCH", path, p, json=body, headers={"if-match": tag})


async def _sites_read(w: World, p: Principal, target: str) -> httpx.Response:
    return await w.call("sites", "GET", f"/v1/sites/{_site(w, target)['id']}", p)


async def _sites_lookup(w: World, p: Principal, target: str) -> httpx.Response:
    body = {"ids": [_site(w, target)["id"]]}
    return await w.call("sites", "POST", "/v1/sites/lookup", p, json=body)


async def _sites_create(w: World, p: Principal, target: str) -> httpx.Response:
    network = OWN_NETWORK if target == "own" else OTHER_NETWORK
    body = {"network": network, "external_code": f"M{next(_counter)}", "name": "Site de test"}
    return await w.call("sites", "POST", "/v1/sites", p, json=body)


async def _sites_update(w: World, p: Principal, target: str) -> httpx.Response:
    path = f"/v1/sites/{_site(w, target)['id']}"
    tag = await w.etag("sites", path)
    body = {"contact": {"website": f"https://example.fr/{next(_counter)}"}}
    return await w.call("sites", "PATCH", path, p, json=body, headers={"if-match": tag})


async def _sites_close(w: World, p: Principal, target: str) -> httpx.Response:
    path = f"/v1/sites/{_site(w, target)['id']}"
    resp = await w.call("sites", "POST", path + "/close", p, json={"reason": "travaux"})
    if resp.status_code == 200:  # put it back for the next cell
        back = await w.call("sites", "POST", path + "/reopen", p)
        assert back.status_code == 200, back.text
    return resp


async def _sites_import(w: World, p: Principal, target: str) -> httpx.Response:
    network = OWN_NETWORK if target == "own" else OTHER_NETWORK
    body = f"network,external_code,name\n{network},I{next(_counter)},Site importé\n"
    return await w.call(
        "sites",
        "POST",
        "/v1/sites/import",
        p,
        content=body.encode(),
        headers={"content-type": "text/csv"},
        params={"dry_run": "true"},
    )


async def _commitments_read(w: World, p: Principal, target: str) -> httpx.Response:
    return await w.call("indicators", "GET", "/v1/commitments/1", p)


async def _api_keys_manage(w: World, p: Principal, target: str) -> httpx.Response:
    body = {
        "name": f"matrix key {next(_counter)}",
        "owner": "matrix",
        "roles": ["network_manager"],
        "network": OWN_NETWORK,
    }
    return await w.call("gateway", "POST", "/v1/api-keys", p, json=body)


async def _agent_mappings_manage(w: World, p: Principal, target: str) -> httpx.Response:
    body = {
        "match": "subject",
        "value": f"matrix-agent-{next(_counter)}",
        "roles": ["agent"],
        "network": OWN_NETWORK,
    }
    return await w.call("gateway", "POST", "/v1/agent-mappings", p, json=body)


async def _audit_read(w: World, p: Principal, target: str) -> httpx.Response:
    return await w.call("gateway", "GET", "/v1/audit-events", p)


async def _jobs_read(w: World, p: Principal, target: str) -> httpx.Response:
    return await w.call("sites", "GET", "/v1/sites/jobs?state=failed", p)


CASES: dict[Action, Case] = {
    SitesAction.networks_read: _networks_read,
    SitesAction.networks_create: _networks_create,
    SitesAction.networks_update: _networks_update,
    SitesAction.sites_read: _sites_read,
    SitesAction.sites_lookup: _sites_lookup,
    SitesAction.sites_create: _sites_create,
    SitesAction.sites_update: _sites_update,
    SitesAction.sites_close: _sites_close,
    SitesAction.sites_import: _sites_import,
    IndicatorsAction.commitments_read: _commitments_read,
    GatewayAction.api_keys_manage: _api_keys_manage,
    GatewayAction.agent_mappings_manage: _agent_mappings_manage,
    GatewayAction.audit_read: _audit_read,
    JobsAction.jobs_read: _jobs_read,
}

SERVICE_APPS = ("sites", "indicators")


@pytest.fixture
def indicators_url(fresh_database_url: Callable[[str], str]) -> str:
    from spp_indicators.cli import MIGRATIONS
    from spp_indicators.seed import seed_commitments

    url = fresh_database_url("indicators")
    migrate_and_seed(MIGRATIONS, url, seed_commitments)
    return url


@pytest.fixture
async def indicators_client(
    indicators_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("SPP_INDICATORS_DATABASE_URL", indicators_url)
    monkeypatch.setenv("SPP_INDICATORS_ACCESS_LOG", "false")
    async with serve_asgi(import_module("spp_indicators.app").create_app()) as client:
        yield client


def gateway_admin_app(db: Database) -> FastAPI:
    """The gateway's own resources, wired as in the gateway, with the caller
    taken from a signed assertion (the gateway proper authenticates first and
    hands the principal over the same way: in the request state)."""
    from spp_gateway.admin import router
    from spp_gateway.store import AgentDirectory, ApiKeyStore

    app = FastAPI()
    app.state.db = db
    app.state.api_keys = ApiKeyStore(db, cache_seconds=0, last_used_resolution=60)
    app.state.agents = AgentDirectory(db, cache_seconds=0)
    install_problem_handlers(app)
    app.include_router(router)
    app.add_middleware(AssertionGuard, verifier=TEST_VERIFIER)
    return app


@pytest.fixture
async def gateway_client(gateway_database: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_asgi(gateway_admin_app(gateway_database)) as client:
        yield client


@pytest.fixture
async def world(
    sites_client: httpx.AsyncClient,
    indicators_client: httpx.AsyncClient,
    gateway_client: httpx.AsyncClient,
) -> World:
    w = World(
        clients={"sites": sites_client, "indicators": indicators_client, "gateway": gateway_client}
    )
    own = await w.call("sites", "POST", "/v1/sites", ADMIN, json=VALSERHONE)
    other = await w.call("sites", "POST", "/v1/sites", ADMIN, json=PARIS_12 | {"network": "caf"})
    assert own.status_code == other.status_code == 201, (own.text, other.text)
    w.own_site, w.other_site = own.json(), other.json()
    return w


def _refused_status(role: Role) -> int:
    return 401 if role is Role.public else 403


async def test_every_cell_of_the_matrix(world: World) -> None:
    checked = 0
    for action, role, scope in iter_cells(ACTIONS.values()):
        case = CASES[action]
        principal = principal_for(role, world)
        resp = await case(world, principal, "own")
        where = f"{action.value} as {role.value}"
        if scope is None:
            assert resp.status_code == _refused_status(role), f"{where}: {resp.text}"
            assert resp.headers["content-type"] == "application/problem+json", where
        else:
            assert resp.status_code < 300, f"{where}: {resp.status_code} {resp.text}"
            if action is SitesAction.sites_import:  # a dry run answers 200 whatever it refuses
                assert resp.json()["rejected"] == 0, f"{where}: {resp.text}"
            if scope in (Scope.network, Scope.site):
                foreign = await case(world, principal, "other")
                # An import reports the other network's rows as rejected.
                if action is SitesAction.sites_import:
                    report = foreign.json()
                    assert report["rejected"] == 1, f"{where} (other network): {foreign.text}"
                    assert report["rejected_rows"][0]["field"] == "network", report
                else:
                    assert foreign.status_code == 403, f"{where} (other network): {foreign.text}"
        checked += 1
    assert checked == len(ACTIONS) * len(ROLES)


async def test_an_agent_changes_only_the_practical_fields_of_its_own_site(world: World) -> None:
    agent = principal_for(Role.agent, world)
    path = f"/v1/sites/{world.own_site['id']}"
    tag = await world.etag("sites", path)
    moved = await world.call(
        "sites", "PATCH", path, agent, json={"name": "Renamed"}, headers={"if-match": tag}
    )
    assert moved.status_code == 403
    assert [e["field"] for e in moved.json()["errors"]] == ["name"]
    hours = {"opening_hours": {"monday": [{"opens": "09:00", "closes": "12:00"}]}}
    ok = await world.call("sites", "PATCH", path, agent, json=hours, headers={"if-match": tag})
    assert ok.status_code == 200, ok.text


async def test_a_manager_cannot_move_a_site_to_a_network_it_does_not_manage(
    world: World,
) -> None:
    manager = principal_for(Role.network_manager, world)
    path = f"/v1/sites/{world.own_site['id']}"
    tag = await world.etag("sites", path)
    resp = await world.call(
        "sites", "PATCH", path, manager, json={"network": "caf"}, headers={"if-match": tag}
    )
    assert resp.status_code == 403, resp.text
    assert "caf" in resp.json()["detail"]
    after = await world.call("sites", "GET", path, ANONYMOUS)
    assert after.json()["network"] == OWN_NETWORK


async def test_scopes_narrow_what_roles_allow(world: World) -> None:
    import_only = Principal(
        subject="import-only",
        kind=PrincipalKind.api_key,
        roles=[Role.network_manager],
        scopes=[SitesAction.sites_import.value],
        network=OWN_NETWORK,
    )
    refused = await _sites_close(world, import_only, "own")
    assert refused.status_code == 403
    assert "scopes" in refused.json()["detail"]
    imported = await _sites_import(world, import_only, "own")
    assert (imported.status_code, imported.json()["rejected"]) == (200, 0), imported.text
    assert (await _sites_read(world, import_only, "own")).status_code == 200


def _app_routes(app: FastAPI) -> list[APIRoute]:
    return [r for r in api_routes(app.routes) if r.path.startswith("/v1")]


def _apps() -> dict[str, FastAPI]:
    apps = {name: import_module(f"spp_{name}.app").create_app() for name in SERVICES_WITH_API}
    apps["gateway"] = gateway_admin_app(Database("sqlite+aiosqlite://"))
    return apps


SERVICES_WITH_API = ("sites", "feedback", "indicators", "labelling")
# The actions each app owns: its endpoints declare these and no others.
# Every service also serves the kit's jobs list (JobsAction).
OWN_ACTIONS: dict[str, frozenset[Action]] = {
    "sites": frozenset(SitesAction) | frozenset(JobsAction),
    "feedback": frozenset(JobsAction),
    "indicators": frozenset(IndicatorsAction) | frozenset(JobsAction),
    "labelling": frozenset(JobsAction),
    "gateway": frozenset(GatewayAction),
}


def test_every_endpoint_declares_exactly_one_action_of_its_own_service() -> None:
    used: set[Action] = set()
    for name, app in _apps().items():
        for route in _app_routes(app):
            actions = declared_actions(route)
            assert len(actions) == 1, f"{name} {route.methods} {route.path}: {actions}"
            assert actions[0] in OWN_ACTIONS[name], f"{name} {route.path}: {actions[0]!r}"
            used.add(actions[0])
    every = set(ACTIONS.values())
    assert used == every, f"actions no endpoint declares: {every - used}"
    assert set(CASES) == every, f"actions without a case: {every - set(CASES)}"


def test_the_platform_lists_every_service_once() -> None:
    assert set(ACTIONS.values()) == set().union(*OWN_ACTIONS.values())
    assert all(a.description and a.grants for a in ACTIONS.values())


def test_docs_show_the_matrix_as_the_code_has_it() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "permissions.md").read_text()
    assert render_markdown(ACTIONS.values()) in doc, "run `make docs` to render docs/permissions.md"

"""feedback, indicators and labelling exist in the same shape as sites."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from importlib import import_module

import httpx
import pytest

from spp_shared.kit.migrations import migrate_and_seed
from tests.support import serve_asgi

SEEDS = {"indicators": ("spp_indicators.seed", "seed_commitments")}


@pytest.fixture(params=["feedback", "indicators", "labelling"])
def migrated_service(
    request: pytest.FixtureRequest,
    fresh_database_url: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    name: str = request.param
    url = fresh_database_url(name)
    seed = None
    if name in SEEDS:
        module, fn = SEEDS[name]
        seed = getattr(import_module(module), fn)
    migrate_and_seed(import_module(f"spp_{name}.cli").MIGRATIONS, url, seed)
    monkeypatch.setenv(f"SPP_{name.upper()}_DATABASE_URL", url)
    monkeypatch.setenv(f"SPP_{name.upper()}_ACCESS_LOG", "false")
    return name


@pytest.fixture
async def service_client(migrated_service: str) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    app = import_module(f"spp_{migrated_service}.app").create_app()
    async with serve_asgi(app) as client:
        yield migrated_service, client


@pytest.mark.anyio
async def test_health_ready_metrics_and_problems(
    service_client: tuple[str, httpx.AsyncClient], admin_headers: dict[str, str]
) -> None:
    name, client = service_client
    assert (await client.get("/healthz")).json() == {"status": "ok", "service": name}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"
    assert (await client.get("/metrics")).status_code == 200
    missing = await client.get("/v1/does-not-exist")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert (await client.get("/openapi.json")).json()["info"]["title"] == f"SP+ {name}"
    # Its outbox is migrated and its admins can read it.
    jobs = await client.get(f"/v1/{name}/jobs", headers=admin_headers)
    assert (jobs.status_code, jobs.json()["items"]) == (200, [])


@pytest.mark.anyio
@pytest.mark.parametrize("migrated_service", ["indicators"], indirect=True)
async def test_the_eight_commitments_are_reference_data(
    service_client: tuple[str, httpx.AsyncClient],
) -> None:
    _, client = service_client
    body = (await client.get("/v1/commitments")).json()
    assert [c["number"] for c in body["items"]] == list(range(1, 9))
    assert body["items"][6]["title"] == (
        "Votre avis est pris en compte pour améliorer le service rendu"
    )
    assert (await client.get("/v1/commitments/9")).status_code == 422

"""The kit's request metrics (kit/metrics.py): labelled by route template,
with bounded label values whatever clients send, refreshed at each scrape."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request

from spp_shared.kit.errors import install_problem_handlers
from spp_shared.kit.metrics import Metrics, MetricsMiddleware, metrics_endpoint

pytestmark = pytest.mark.anyio


def metered_app(metrics: Metrics) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/v1/sites/{site_id}")
    async def get_site(site_id: str) -> dict[str, str]:
        return {"id": site_id}

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("bug")

    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def counts(text: str) -> dict[tuple[str, str, str], float]:
    """(method, route, status) -> requests, from a scrape."""
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "spp_http_requests"]
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in family.samples
        if s.name == "spp_http_requests_total" and s.labels["service"] == "test"
    }


async def test_requests_are_counted_by_route_template_method_and_status() -> None:
    metrics = Metrics("test")
    refreshed: list[str] = []

    async def refresh(request: Request) -> None:
        refreshed.append(request.url.path)

    metrics.refreshers.append(refresh)
    transport = httpx.ASGITransport(metered_app(metrics), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for site in ("a", "b", "c"):
            await client.get(f"/v1/sites/{site}")
        await client.get("/v1/no/such/path/1")
        await client.get("/v1/no/such/path/2")
        await client.request("BREW", "/v1/sites/a")
        await client.get("/v1/boom")
        scrape = await client.get("/metrics")
    assert scrape.headers["content-type"] == CONTENT_TYPE_LATEST
    assert refreshed == ["/metrics"]
    assert counts(scrape.text) == {
        # One series per template, not per site.
        ("GET", "/v1/sites/{site_id}", "200"): 3,
        # Paths no route knows share one label value.
        ("GET", "unmatched", "404"): 2,
        # So do methods nobody uses.
        ("OTHER", "/v1/sites/{site_id}", "405"): 1,
        ("GET", "/v1/boom", "500"): 1,
    }


async def test_each_app_has_its_own_registry() -> None:
    first, second = Metrics("test"), Metrics("test")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(metered_app(first)), base_url="http://test"
    ) as client:
        await client.get("/v1/sites/a")
    assert counts(first.render().body.decode()) == {("GET", "/v1/sites/{site_id}", "200"): 1}
    assert counts(second.render().body.decode()) == {}

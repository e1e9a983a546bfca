"""The gateway's own endpoints: health, readiness, metrics, merged OpenAPI, docs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from spp_gateway.openapi import OpenAPIClash, merge_openapi
from spp_gateway.routes import RouteTable
from tests.support import ServiceDB

from .conftest import (
    BOOTSTRAP_TOKEN,
    OPS,
    SERVICES,
    ServedApp,
    dead_url,
    gateway_settings,
    make_upstream,
    serve_gateway,
)

pytestmark = pytest.mark.anyio


async def test_healthz(gateway: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"
    assert "server" not in resp.headers


async def test_readyz_all_up(gateway: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get("/readyz", headers=OPS)
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert set(body["services"]) == {"sites", "feedback", "indicators", "labelling"}


async def test_readyz_is_503_when_one_upstream_is_down(upstreams: dict[str, ServedApp]) -> None:
    urls = {n: u.url for n, u in upstreams.items()}
    urls["indicators"] = dead_url()
    served = serve_gateway(gateway_settings(urls))
    try:
        async with httpx.AsyncClient(base_url=served.url) as client:
            ready = await client.get("/readyz", headers=OPS)
            anonymous = await client.get("/readyz")
            spec = (await client.get("/openapi.json")).json()
    finally:
        served.stop()
    assert ready.status_code == 503
    services = ready.json()["services"]
    assert services["indicators"]["status"] == "unreachable"
    assert services["sites"]["status"] == "ok"
    assert (anonymous.status_code, anonymous.json()) == (503, {"status": "unavailable"})
    assert spec["info"]["x-unavailable-services"] == ["indicators"]
    assert "/v1/sites/{site_id}" in spec["paths"]


async def test_anonymous_readiness_is_the_status_alone(gateway: ServedApp) -> None:
    # It was: the database's and every upstream's state, to anyone.
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get("/readyz")
        wrong = await client.get("/readyz", headers={"Authorization": "Bearer not-the-token"})
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"


async def test_metrics_need_the_operations_token(gateway: ServedApp) -> None:
    # It was: 200 and every route's volumes, to anyone.
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        await client.get("/v1/sites/1")
        anonymous = await client.get("/metrics")
        bootstrap = await client.get(
            "/metrics", headers={"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}
        )
        resp = await client.get("/metrics", headers=OPS)
    for refused in (anonymous, bootstrap):
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "spp_http_requests_total" not in refused.text
    assert resp.status_code == 200
    assert 'route="sites"' in resp.text
    assert "spp_http_requests_total" in resp.text


async def test_no_metrics_without_an_operations_token(
    upstreams: dict[str, ServedApp], gateway_db: ServiceDB
) -> None:
    settings = gateway_settings(
        {n: u.url for n, u in upstreams.items()}, metrics_token=None, database_url=gateway_db.url
    )
    served = serve_gateway(settings)
    try:
        async with httpx.AsyncClient(base_url=served.url) as client:
            metrics = await client.get("/metrics")
            sent = await client.get("/metrics", headers=OPS)
            ready = await client.get("/readyz")
            health = await client.get("/healthz")
    finally:
        served.stop()
    assert metrics.status_code == 404
    assert metrics.headers["content-type"] == "application/problem+json"
    assert sent.status_code == 404
    assert ready.json() == {"status": "ok"}
    assert health.status_code == 200


def test_a_short_operations_token_is_refused() -> None:
    with pytest.raises(ValidationError, match="METRICS_TOKEN"):
        gateway_settings({n: "http://x" for n in SERVICES}, metrics_token="short")


async def test_merged_openapi(gateway: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get("/openapi.json")
        again = await client.get("/openapi.json")
    assert resp.status_code == 200
    assert again.content == resp.content  # served from the cache
    spec = resp.json()
    assert spec["info"]["x-unavailable-services"] == []
    paths = spec["paths"]
    assert "/v1/sites/{site_id}" in paths
    assert "/v1/experiences/{exp_id}/site" in paths
    # The services' own health endpoints are not part of the public API.
    assert "/healthz" not in paths
    schemas = spec["components"]["schemas"]
    # Each service's names, unchanged.
    assert set(schemas["Site"]["properties"]) == {"id", "name"}
    assert set(schemas["ExperienceSite"]["properties"]) == {"id", "label", "network"}
    site_ref = paths["/v1/experiences/{exp_id}/site"]["get"]["responses"]["200"]["content"]
    assert site_ref["application/json"]["schema"] == {"$ref": "#/components/schemas/ExperienceSite"}
    assert "HTTPValidationError" in schemas  # identical in all services: kept once
    get_site = paths["/v1/sites/{site_id}"]["get"]
    assert get_site["operationId"] == "get_site"
    op_ids = [
        op["operationId"] for item in paths.values() for op in item.values() if "operationId" in op
    ]
    assert {"list_networks", "list_ratings"} <= set(op_ids)
    assert len(op_ids) == len(set(op_ids))
    groups = {g["name"]: g["tags"] for g in spec["x-tagGroups"]}
    assert "sites" in groups["sites"]
    assert "feedback" in groups["feedback"]  # untagged operation: tagged by service


async def test_docs_is_swagger_ui(gateway: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get("/docs")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in resp.text
    assert "/openapi.json" in resp.text


def _doc(paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    return {"openapi": "3.1.0", "paths": paths, "components": {"schemas": schemas}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _op(op_id: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "operationId": op_id,
            "responses": {"200": {"content": {"application/json": {"schema": schema}}}},
        }
    }


def test_merge_refuses_a_name_two_services_define_differently() -> None:
    # It was: both renamed (SitesImportReport, IndicatorsImportReport), so the
    # first ImportReport the indicators service published renamed the one
    # every client generated from the sites service already used.
    routes = RouteTable({n: "http://x" for n in ("sites", "feedback", "indicators", "labelling")})
    address = {"type": "object", "properties": {"city": {"type": "string"}}}
    report = {"type": "object", "properties": {"created": {"type": "integer"}}}
    sites = _doc(
        {"/v1/sites/import": _op("import_sites", _ref("ImportReport"))},
        {"ImportReport": report, "Address": address},
    )
    indicators = _doc(
        {"/v1/indicators/import": _op("import_indicators", _ref("ImportReport"))},
        {"ImportReport": {"type": "object", "properties": {"values": {"type": "integer"}}}},
    )
    with pytest.raises(OpenAPIClash, match=r"schemas 'ImportReport' \(sites and indicators\)"):
        merge_openapi({"sites": sites, "indicators": indicators}, routes)
    # The same definition under the same name is one contract, kept once.
    same = _doc(
        {"/v1/indicators/import": _op("import_indicators", _ref("ImportReport"))},
        {"ImportReport": report, "Address": address},
    )
    merged = merge_openapi({"sites": sites, "indicators": same, "feedback": None}, routes)
    # Address is referred to by no operation: left out.
    assert set(merged["components"]["schemas"]) == {"ImportReport"}
    assert merged["info"]["x-unavailable-services"] == ["feedback"]
    # Inputs untouched.
    assert "responses" in sites["paths"]["/v1/sites/import"]["get"]
    assert "414" not in sites["paths"]["/v1/sites/import"]["get"]["responses"]


def test_merge_refuses_an_operation_id_two_services_use() -> None:
    routes = RouteTable({n: "http://x" for n in ("sites", "feedback", "indicators", "labelling")})
    sites = _doc({"/v1/sites": _op("list", {"type": "array"})}, {})
    feedback = _doc({"/v1/ratings": _op("list", {"type": "array"})}, {})
    with pytest.raises(OpenAPIClash, match=r"operationId 'list' \(sites and feedback\)"):
        merge_openapi({"sites": sites, "feedback": feedback}, routes)


async def test_a_clash_is_a_503_not_a_renamed_document(
    upstreams: dict[str, ServedApp], gateway_db: ServiceDB
) -> None:
    clashing = make_upstream("feedback")

    @clashing.get("/v1/ratings/{rating_id}", operation_id="get_site")
    async def get_rating(rating_id: str) -> dict[str, str]:
        return {}

    feedback = ServedApp(clashing).start()
    urls = {n: u.url for n, u in upstreams.items()} | {"feedback": feedback.url}
    served = serve_gateway(gateway_settings(urls, database_url=gateway_db.url))
    try:
        async with httpx.AsyncClient(base_url=served.url) as client:
            resp = await client.get("/openapi.json")
    finally:
        served.stop()
        feedback.stop()
    assert resp.status_code == 503
    assert resp.headers["content-type"] == "application/problem+json"
    assert "operationId 'get_site' (sites and feedback)" in resp.json()["detail"]


def test_openapi_and_docs_are_not_proxied() -> None:
    routes = RouteTable({n: "http://x" for n in ("sites", "feedback", "indicators", "labelling")})
    assert routes.match("/openapi.json") is None
    assert routes.match("/docs") is None


async def test_the_gateways_own_resources_declare_their_problems(gateway: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        spec = (await client.get("/openapi.json")).json()
    for path, method in [
        ("/v1/api-keys/{key_id}", "delete"),
        ("/v1/api-keys/{key_id}", "get"),
        ("/v1/agent-mappings/{mapping_id}", "delete"),
    ]:
        forbidden = spec["paths"][path][method]["responses"]["403"]
        [(media, body)] = forbidden["content"].items()
        assert media == "application/problem+json", (path, method)
        assert body["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert spec["components"]["schemas"]["Problem"]["title"] == "Problem"

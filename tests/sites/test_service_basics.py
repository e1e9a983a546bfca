"""What every service answers the same way: errors, health, metrics, request ids."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.anyio


async def test_unknown_route_and_method_are_problems(sites_client: httpx.AsyncClient) -> None:
    resp = await sites_client.get("/v1/nothing-here")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"
    assert "/v1/nothing-here" in resp.json()["detail"]
    method = await sites_client.delete("/v1/networks")
    assert method.status_code == 405
    assert method.headers["content-type"] == "application/problem+json"


async def test_malformed_json_is_a_422_problem(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    resp = await sites_client.post(
        "/v1/sites",
        content=b'{"network": "caf",',
        headers=admin_headers | {"content-type": "application/json"},
    )
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"


async def test_forged_assertion_is_refused(sites_client: httpx.AsyncClient) -> None:
    resp = await sites_client.post(
        "/v1/networks", json={"code": "x1", "name": "X"}, headers={"x-spp-assertion": "e30.e30.x"}
    )
    assert resp.status_code == 401
    assert resp.json()["type"].endswith("/invalid-assertion")


async def test_request_id_is_echoed_or_made(sites_client: httpx.AsyncClient) -> None:
    given = await sites_client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await sites_client.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32


async def test_health_ready_metrics(sites_client: httpx.AsyncClient) -> None:
    assert (await sites_client.get("/healthz")).json()["status"] == "ok"
    ready = await sites_client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"
    await sites_client.get("/v1/networks")
    metrics = await sites_client.get("/metrics")
    assert 'route="/v1/networks"' in metrics.text
    assert "spp_http_requests_total" in metrics.text


async def test_assertion_signed_with_another_key_is_refused(
    sites_client: httpx.AsyncClient,
) -> None:
    from spp_shared.contracts.permissions import Role
    from spp_shared.kit.identity import GATEWAY_ISSUER, AssertionSigner, Principal, PrincipalKind
    from spp_shared.kit.keys import generate_private_key_pem
    from tests.support import assertion_headers

    admin = Principal(subject="x", kind=PrincipalKind.bootstrap, roles=[Role.programme_admin])
    # The gateway's issuer and the right request, but not the gateway's key.
    stranger = AssertionSigner(GATEWAY_ISSUER, generate_private_key_pem(), setting="test")
    headers = assertion_headers(admin, stranger)
    resp = await sites_client.post(
        "/v1/networks", json={"code": "x1", "name": "X"}, headers=headers
    )
    assert resp.status_code == 401
    assert (await sites_client.get("/v1/networks/x1")).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/v1/sites?network=ca%00f",
        "/v1/sites/a%00b",
        "/v1/networks/a%00b",
        "/v1/sites?q=%1b%5b31m",
    ],
)
async def test_control_characters_in_path_or_query_are_400(
    sites_client: httpx.AsyncClient, url: str
) -> None:
    resp = await sites_client.get(url)
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/problem+json"


async def test_nul_in_a_cursor_or_body_never_reaches_the_database(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    cursor = await sites_client.get("/v1/sites", params={"cursor": "WyJcdTAwMDAiXQ"})
    assert cursor.status_code == 400
    lookup = await sites_client.post(
        "/v1/sites/lookup", json={"ids": ["a\u0000b"]}, headers=admin_headers
    )
    assert lookup.status_code == 422
    body = {"network": "caf", "external_code": "N1", "name": "Caf\u0000"}
    create = await sites_client.post("/v1/sites", json=body, headers=admin_headers)
    assert create.status_code == 422
    assert create.json()["errors"][0]["field"] == "name"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/sites", {"network": "caf", "external_code": "K1", "name": "n", "kind": "k" * 250}),
        ("/v1/sites", {"network": "caf", "external_code": "K1", "name": "n" * 301}),
        (
            "/v1/sites",
            {
                "network": "caf",
                "external_code": "K1",
                "name": "n",
                "address": {"country": "c" * 101},
            },
        ),
        ("/v1/networks", {"code": "zz-long", "name": "n" * 280}),
        ("/v1/sites", {"network": "caf", "external_code": "K" * 65, "name": "n"}),
    ],
)
async def test_values_longer_than_their_column_are_422(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str], path: str, body: dict
) -> None:
    resp = await sites_client.post(path, json=body, headers=admin_headers)
    assert resp.status_code == 422, resp.text


async def test_malformed_json_names_the_body_and_where(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    resp = await sites_client.post(
        "/v1/networks",
        content=b'{"code": "x1", "name": }',
        headers=admin_headers | {"content-type": "application/json"},
    )
    assert resp.status_code == 422
    error = resp.json()["errors"][0]
    assert error["field"] == "body"
    assert "invalid JSON at character" in error["reason"]


async def test_405_names_every_allowed_method(sites_client: httpx.AsyncClient) -> None:
    resp = await sites_client.delete("/v1/sites/x")
    assert resp.status_code == 405
    assert resp.headers["allow"] == "GET, PATCH"
    networks = await sites_client.put("/v1/networks")
    assert networks.headers["allow"] == "GET, POST"


async def test_encoded_bodies_are_415(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    import gzip

    resp = await sites_client.post(
        "/v1/networks",
        content=gzip.compress(b'{"code": "gz", "name": "G"}'),
        headers=admin_headers | {"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert resp.status_code == 415
    assert (await sites_client.get("/v1/networks/gz")).status_code == 404

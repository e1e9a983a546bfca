from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"


async def test_reference_networks_are_listed_with_pagination(
    sites_client: httpx.AsyncClient,
) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        resp = await sites_client.get("/v1/networks", params=params)
        assert resp.status_code == 200
        body = resp.json()
        assert len(body["items"]) <= 4
        seen += [n["code"] for n in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages > 1
    assert seen == sorted(seen)
    assert {"caf", "cpam", "france-travail", "dgfip", "france-services"} <= set(seen)


async def test_bad_cursor_is_a_problem(sites_client: httpx.AsyncClient) -> None:
    resp = await sites_client.get("/v1/networks", params={"cursor": "%%%not-ours"})
    assert resp.status_code == 400
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["type"].endswith("/invalid-cursor")


async def test_get_network_etag_and_304(sites_client: httpx.AsyncClient) -> None:
    resp = await sites_client.get("/v1/networks/caf")
    assert resp.status_code == 200
    assert resp.json()["results_level"] == "departement"
    tag = resp.headers["etag"]
    again = await sites_client.get("/v1/networks/caf", headers={"If-None-Match": tag})
    assert again.status_code == 304
    missing = await sites_client.get("/v1/networks/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM


async def test_create_network_needs_admin(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str], manager_headers
) -> None:
    body = {"code": "onacvg", "name": "Office national des combattants et des victimes de guerre"}
    anon = await sites_client.post("/v1/networks", json=body)
    assert anon.status_code == 401
    assert anon.headers["content-type"] == PROBLEM
    manager = await sites_client.post("/v1/networks", json=body, headers=manager_headers("caf"))
    assert manager.status_code == 403
    created = await sites_client.post("/v1/networks", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/v1/networks/onacvg"
    dup = await sites_client.post("/v1/networks", json=body, headers=admin_headers)
    assert dup.status_code == 409


async def test_invalid_network_names_the_fields(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    resp = await sites_client.post(
        "/v1/networks",
        json={"code": "Not A Slug", "name": "", "colour": "blue"},
        headers=admin_headers,
    )
    assert resp.status_code == 422
    fields = {e["field"] for e in resp.json()["errors"]}
    assert {"code", "name", "colour"} <= fields
    assert (await sites_client.get("/v1/networks/Not A Slug")).status_code == 404


async def test_patch_network_with_if_match(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    current = await sites_client.get("/v1/networks/msa")
    tag = current.headers["etag"]
    no_match = await sites_client.patch(
        "/v1/networks/msa", json={"website": "https://www.msa.fr/lfp"}, headers=admin_headers
    )
    assert no_match.status_code == 428
    ok = await sites_client.patch(
        "/v1/networks/msa",
        json={"website": "https://www.msa.fr/lfp"},
        headers=admin_headers | {"If-Match": tag},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["website"] == "https://www.msa.fr/lfp"
    assert ok.json()["version"] == current.json()["version"] + 1
    stale = await sites_client.patch(
        "/v1/networks/msa", json={"name": "MSA"}, headers=admin_headers | {"If-Match": tag}
    )
    assert stale.status_code == 412
    assert (await sites_client.get("/v1/networks/msa")).json()["name"] != "MSA"

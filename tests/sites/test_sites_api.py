from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from tests.sites.fixtures import ALL, BRON, GOURBEYRE, LYON_8, PARIS_12, PARIS_20, VALSERHONE, VICO

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"


def etag(site: dict[str, Any]) -> str:
    return f'"{site["id"]}.{site["version"]}"'


async def create(client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> dict:
    resp = await client.post("/v1/sites", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_create_derives_geography_and_reads_back(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    resp = await sites_client.post("/v1/sites", json=VICO, headers=admin_headers)
    assert resp.status_code == 201, resp.text
    site = resp.json()
    assert resp.headers["location"] == f"/v1/sites/{site['id']}"
    assert resp.headers["etag"] == f'"{site["id"]}.1"'
    assert site["address"]["departement_code"] == "2A"
    assert site["address"]["region_code"] == "94"
    assert site["contact"]["phone"] == "+33495262652"
    assert site["status"]["state"] == "open"

    by_id = await sites_client.get(f"/v1/sites/{site['id']}")
    assert by_id.status_code == 200
    assert by_id.json() == site
    by_ref = await sites_client.get("/v1/sites/france-services:125")
    assert by_ref.json()["id"] == site["id"]
    overseas = await create(sites_client, admin_headers, GOURBEYRE)
    assert overseas["address"]["departement_code"] == "971"
    assert overseas["address"]["region_code"] == "01"


async def test_get_honours_if_none_match(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    site = await create(sites_client, admin_headers, VALSERHONE)
    first = await sites_client.get(f"/v1/sites/{site['id']}")
    second = await sites_client.get(
        f"/v1/sites/{site['id']}", headers={"If-None-Match": first.headers["etag"]}
    )
    assert second.status_code == 304
    assert second.content == b""


async def test_unknown_site_is_404_problem(sites_client: httpx.AsyncClient) -> None:
    resp = await sites_client.get("/v1/sites/01JBZZZZZZZZZZZZZZZZZZZZZZ")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["type"].endswith("/site-not-found")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"siret": "12345678901234"}, "siret"),
        ({"address": {"postcode": "ABCDE"}}, "address.postcode"),
        ({"address": {"commune_code": "1A001"}}, "address.commune_code"),
        ({"coordinates": {"lat": 40.4168, "lon": -3.7038}}, "coordinates"),  # Madrid
        ({"contact": {"phone": "12"}}, "contact.phone"),
        ({"contact": {"email": "not-an-email"}}, "contact.email"),
        ({"colour": "blue"}, "colour"),
        ({"name": ""}, "name"),
        ({"opening_hours": {"monday": [{"opens": "14:00", "closes": "12:00"}]}}, "opening_hours"),
        (
            {
                "opening_hours": {
                    "tuesday": [
                        {"opens": "09:00", "closes": "12:00"},
                        {"opens": "11:00", "closes": "15:00"},
                    ]
                }
            },
            "opening_hours",
        ),
    ],
)
async def test_bad_site_is_422_naming_the_field(
    sites_client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    change: dict[str, Any],
    field: str,
) -> None:
    body = copy.deepcopy(PARIS_12) | change
    resp = await sites_client.post("/v1/sites", json=body, headers=admin_headers)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == PROBLEM
    fields = [e["field"] for e in resp.json()["errors"]]
    assert any(f.startswith(field) for f in fields), fields
    listing = await sites_client.get("/v1/sites")
    assert listing.json()["items"] == []


async def test_unknown_network_and_duplicates(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    unknown = await sites_client.post(
        "/v1/sites", json=PARIS_12 | {"network": "no-such-network"}, headers=admin_headers
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "network"
    await create(sites_client, admin_headers, PARIS_12)
    dup = await sites_client.post("/v1/sites", json=PARIS_12, headers=admin_headers)
    assert dup.status_code == 409
    assert dup.headers["content-type"] == PROBLEM


async def test_writes_need_a_caller_who_manages_the_network(
    sites_client: httpx.AsyncClient, manager_headers
) -> None:
    anon = await sites_client.post("/v1/sites", json=PARIS_12)
    assert anon.status_code == 401
    other = await sites_client.post("/v1/sites", json=PARIS_12, headers=manager_headers("caf"))
    assert other.status_code == 403
    own = await sites_client.post(
        "/v1/sites", json=PARIS_12, headers=manager_headers("france-services")
    )
    assert own.status_code == 201


async def test_patch_requires_current_etag(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    site = await create(sites_client, admin_headers, PARIS_20)
    url = f"/v1/sites/{site['id']}"
    change = {"name": "France services Paris 20e - Ramus", "address": {"commune_code": "75112"}}
    missing = await sites_client.patch(url, json=change, headers=admin_headers)
    assert missing.status_code == 428
    ok = await sites_client.patch(
        url, json=change, headers=admin_headers | {"If-Match": etag(site)}
    )
    assert ok.status_code == 200, ok.text
    assert ok.headers["etag"] == f'"{site["id"]}.2"'
    body = ok.json()
    assert body["name"] == change["name"]
    assert body["address"]["commune_code"] == "75112"
    assert body["address"]["departement_code"] == "75"
    assert body["address"]["line"] is None  # the address object is replaced as a whole
    stale = await sites_client.patch(
        url, json={"name": "lost update"}, headers=admin_headers | {"If-Match": etag(site)}
    )
    assert stale.status_code == 412
    assert (await sites_client.get(url)).json()["name"] == change["name"]
    null_name = await sites_client.patch(
        url, json={"name": None}, headers=admin_headers | {"If-Match": ok.headers["etag"]}
    )
    assert null_name.status_code == 422


async def test_an_etag_names_its_site_not_just_a_version(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    first = await create(sites_client, admin_headers, BRON)
    other = await create(sites_client, admin_headers, LYON_8)
    assert first["version"] == other["version"] == 1
    wrong = await sites_client.patch(
        f"/v1/sites/{other['id']}",
        json={"name": "x"},
        headers=admin_headers | {"If-Match": etag(first)},
    )
    assert wrong.status_code == 412


async def test_manager_cannot_move_a_site_to_another_network(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str], manager_headers
) -> None:
    site = await create(sites_client, admin_headers, BRON)
    resp = await sites_client.patch(
        f"/v1/sites/{site['id']}",
        json={"network": "caf"},
        headers=manager_headers("france-services") | {"If-Match": etag(site)},
    )
    assert resp.status_code == 403
    assert (await sites_client.get(f"/v1/sites/{site['id']}")).json()["network"] == (
        "france-services"
    )


async def test_close_keeps_the_site_and_reopen(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    site = await create(sites_client, admin_headers, LYON_8)
    url = f"/v1/sites/{site['id']}"
    closed = await sites_client.post(
        f"{url}/close",
        json={
            "status": "temporarily_closed",
            "since": "2026-12-01",
            "reopens_on": "2027-01-05",
            "reason": "travaux",
        },
        headers=admin_headers,
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == {
        "state": "temporarily_closed",
        "since": "2026-12-01",
        "reopens_on": "2027-01-05",
        "reason": "travaux",
    }
    listed = await sites_client.get("/v1/sites", params={"status": "temporarily_closed"})
    assert [s["id"] for s in listed.json()["items"]] == [site["id"]]
    reopened = await sites_client.post(f"{url}/reopen", headers=admin_headers)
    assert reopened.json()["status"]["state"] == "open"
    final = await sites_client.post(f"{url}/close", json={}, headers=admin_headers)
    assert final.json()["status"]["state"] == "closed"
    again = await sites_client.post(f"{url}/close", json={}, headers=admin_headers)
    assert again.status_code == 409
    assert (await sites_client.get(url)).status_code == 200
    bad = await sites_client.post(f"{url}/reopen", headers=admin_headers | {"If-Match": etag(site)})
    assert bad.status_code == 412


async def test_list_filters(sites_client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    ids = {s["external_code"]: (await create(sites_client, admin_headers, s))["id"] for s in ALL}

    async def codes(**params: Any) -> list[str]:
        resp = await sites_client.get("/v1/sites", params=params)
        assert resp.status_code == 200, resp.text
        return sorted(s["external_code"] for s in resp.json()["items"])

    assert await codes(departement="01") == ["1", "695"]
    assert await codes(region="84") == ["1", "657", "695", "953"]
    assert await codes(commune="75120") == ["438"]
    assert await codes(network="caf") == []
    assert await codes(q="mediation paris") == ["435", "438"]
    assert await codes(q="MÉDIATION bron") == ["953"]
    assert await codes(departement="2A", network="france-services") == ["125"]
    assert len(ids) == len(ALL)


async def test_near_orders_by_distance_within_radius(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for body in ALL:
        await create(sites_client, admin_headers, body)
    # Place Bellecour, Lyon: Lyon 8e (~4 km) then Bron (~6 km); Paris is out of range.
    resp = await sites_client.get("/v1/sites", params={"near": "45.7578,4.832", "radius_km": 8})
    items = resp.json()["items"]
    assert [s["external_code"] for s in items] == ["657", "953"]
    assert 3 < items[0]["distance_km"] < items[1]["distance_km"] < 8
    first = await sites_client.get(
        "/v1/sites", params={"near": "45.7578,4.832", "radius_km": 8, "limit": 1}
    )
    page = first.json()
    assert [s["external_code"] for s in page["items"]] == ["657"]
    second = await sites_client.get(
        "/v1/sites",
        params={"near": "45.7578,4.832", "radius_km": 8, "limit": 1, "cursor": page["next_cursor"]},
    )
    assert [s["external_code"] for s in second.json()["items"]] == ["953"]
    assert second.json()["next_cursor"] is None
    bad = await sites_client.get("/v1/sites", params={"near": "lyon"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "near"
    too_far = await sites_client.get("/v1/sites", params={"near": "45.7,4.8", "radius_km": 5000})
    assert too_far.status_code == 422


async def test_cursor_pagination_walks_everything_once(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for body in ALL:
        await create(sites_client, admin_headers, body)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        body = (await sites_client.get("/v1/sites", params=params)).json()
        seen += [s["id"] for s in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == len(ALL)
    assert seen == sorted(seen)


async def test_lookup_in_bulk(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    a = await create(sites_client, admin_headers, VALSERHONE)
    b = await create(sites_client, admin_headers, PARIS_12 | {"sp_code": "AbC123xyZ9"})
    resp = await sites_client.post(
        "/v1/sites/lookup",
        json={
            "ids": [a["id"], "AbC123xyZ9", "01JBZZZZZZZZZZZZZZZZZZZZZZ"],
            "refs": [
                {"network": "france-services", "external_code": "1"},
                {"network": "caf", "external_code": "1"},
            ],
        },
        headers=admin_headers,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert sorted(s["id"] for s in body["found"]) == sorted([a["id"], b["id"]])
    assert body["missing_ids"] == ["01JBZZZZZZZZZZZZZZZZZZZZZZ"]
    assert body["missing_refs"] == [{"network": "caf", "external_code": "1"}]
    found = {s["id"]: s for s in body["found"]}
    assert found[b["id"]]["departement_code"] == "75"
    too_many = await sites_client.post(
        "/v1/sites/lookup", json={"ids": ["x"] * 10_001}, headers=admin_headers
    )
    assert too_many.status_code == 422
    assert (await sites_client.get("/v1/sites/AbC123xyZ9")).json()["id"] == b["id"]


async def test_lookup_takes_ten_thousand_keys(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    site = await create(sites_client, admin_headers, VALSERHONE)
    ids = [f"SP{i:08d}" for i in range(5_000)] + [site["id"]]
    refs = [{"network": "caf", "external_code": f"C{i}"} for i in range(4_999)]
    resp = await sites_client.post(
        "/v1/sites/lookup", json={"ids": ids, "refs": refs}, headers=admin_headers
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [s["id"] for s in body["found"]] == [site["id"]]
    assert (len(body["missing_ids"]), len(body["missing_refs"])) == (5_000, 4_999)


async def test_contradictory_geography_is_refused(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = VALSERHONE | {"address": {"commune_code": "53130", "departement_code": "75"}}
    resp = await sites_client.post("/v1/sites", json=body, headers=admin_headers)
    assert resp.status_code == 422
    assert "does not match" in resp.json()["detail"]
    site = await create(sites_client, admin_headers, VALSERHONE)
    patch = await sites_client.patch(
        f"/v1/sites/{site['id']}",
        json={"address": {"commune_code": "75056", "departement_code": "13"}},
        headers=admin_headers | {"If-Match": etag(site)},
    )
    assert patch.status_code == 422
    unknown_but_well_formed = await sites_client.post(
        "/v1/sites",
        json=PARIS_12 | {"address": {"commune_code": "98799"}},
        headers=admin_headers,
    )
    assert unknown_but_well_formed.status_code == 201, unknown_but_well_formed.text


async def test_geography_filters_take_every_code_form(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await create(sites_client, admin_headers, VICO)
    tahiti = PARIS_12 | {
        "external_code": "PF-1",
        "address": {"commune_code": "98735"},
        "coordinates": {"lat": -17.535, "lon": -149.569},
    }
    await create(sites_client, admin_headers, tahiti)
    for params, expected in [
        ({"departement": "2a"}, ["125"]),
        ({"departement": "dep2A"}, ["125"]),
        ({"departement": "987"}, ["PF-1"]),
        ({"region": "reg94"}, ["125"]),
        ({"commune": "com2A348"}, ["125"]),
    ]:
        resp = await sites_client.get("/v1/sites", params=params)
        assert resp.status_code == 200, (params, resp.text)
        assert [s["external_code"] for s in resp.json()["items"]] == expected, params
    bad = await sites_client.get("/v1/sites", params={"departement": "20"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "departement"


async def test_parents_link_whatever_the_order(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    child = await create(
        sites_client, admin_headers, BRON | {"sp_code": "CHILD0001", "parent_sp_code": "PARENT001"}
    )
    assert child["parent_id"] is None  # the parent is not known yet
    parent = await create(sites_client, admin_headers, LYON_8 | {"sp_code": "PARENT001"})
    assert (await sites_client.get("/v1/sites/CHILD0001")).json()["parent_id"] == parent["id"]

    # The parent takes another code: the child's link goes, until a site has it.
    moved = await sites_client.patch(
        "/v1/sites/PARENT001",
        json={"sp_code": "PARENT002"},
        headers=admin_headers | {"If-Match": etag(parent)},
    )
    assert moved.status_code == 200, moved.text
    assert (await sites_client.get("/v1/sites/CHILD0001")).json()["parent_id"] is None
    relinked = await sites_client.patch(
        "/v1/sites/CHILD0001",
        json={"parent_sp_code": "PARENT002"},
        headers=admin_headers | {"If-Match": etag(child)},
    )
    assert relinked.json()["parent_id"] == parent["id"]


async def test_reopening_date_must_be_in_the_future(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    site = await create(sites_client, admin_headers, VALSERHONE)
    resp = await sites_client.post(
        f"/v1/sites/{site['id']}/close",
        json={"status": "temporarily_closed", "reopens_on": "2000-01-01"},
        headers=admin_headers,
    )
    assert resp.status_code == 422
    assert (await sites_client.get(f"/v1/sites/{site['id']}")).json()["status"]["state"] == "open"


async def test_if_modified_since(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    site = await create(sites_client, admin_headers, VALSERHONE)
    first = await sites_client.get(f"/v1/sites/{site['id']}")
    stamp = first.headers["last-modified"]
    assert stamp.endswith(" GMT")
    same = await sites_client.get(f"/v1/sites/{site['id']}", headers={"If-Modified-Since": stamp})
    assert same.status_code == 304
    assert same.headers["etag"] == first.headers["etag"]
    older = await sites_client.get(
        f"/v1/sites/{site['id']}", headers={"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}
    )
    assert older.status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
    both = await sites_client.get(
        f"/v1/sites/{site['id']}", headers={"If-Modified-Since": stamp, "If-None-Match": '"x"'}
    )
    assert both.status_code == 200
    garbage = await sites_client.get(
        f"/v1/sites/{site['id']}", headers={"If-Modified-Since": "yesterday"}
    )
    assert garbage.status_code == 200
    network = await sites_client.get("/v1/networks/caf")
    again = await sites_client.get(
        "/v1/networks/caf", headers={"If-Modified-Since": network.headers["last-modified"]}
    )
    assert again.status_code == 304


async def test_an_absurd_if_modified_since_is_ignored(sites_client: httpx.AsyncClient) -> None:
    for value in (
        "Mon, 99999999999999999999 Jan 2020 00:00:00 GMT",
        "Mon, 01 Jan 2020 00:00:00 +99999999999999999999",
    ):
        resp = await sites_client.get("/v1/networks/caf", headers={"If-Modified-Since": value})
        assert resp.status_code == 200

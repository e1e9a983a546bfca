"""The programme's structures export and the France services list, imported as published."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.anyio

DEMO = Path(__file__).resolve().parents[2] / "services/sites/spp_sites/reference/demo"
EXPORT = DEMO / "sp_plus_export-structures.csv"
FRANCE_SERVICES = DEMO / "france_services_liste-fs-20240801.csv"


async def import_path(
    client: httpx.AsyncClient, path: Path, headers: dict[str, str], **params: str
) -> httpx.Response:
    def chunks():  # streamed: the test client never holds the whole file either
        with path.open("rb") as f:
            while chunk := f.read(64 * 1024):
                yield chunk

    async def body():
        for chunk in chunks():
            yield chunk

    return await client.post(
        "/v1/sites/import",
        content=body(),
        headers=headers | {"content-type": "text/csv"},
        params=params,
        timeout=300,
    )


async def count(client: httpx.AsyncClient, **filters: str) -> int:
    total, cursor = 0, None
    while True:
        params = {"limit": "500", **filters} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/sites", params=params)).json()
        total += len(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return total


async def test_whole_export_then_france_services_list(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    resp = await import_path(sites_client, EXPORT, admin_headers)
    assert resp.status_code == 200, resp.text[:2000]
    report = resp.json()
    assert report["format"] == "sp-plus-export"
    assert (report["rows"], report["created"], report["rejected"]) == (14763, 14763, 0)
    assert report["committed"] is True
    assert "ministere-de-la-culture" in report["networks_created"]
    assert "dgfip" not in report["networks_created"]  # known through its alias "DGFIP"
    fallbacks = [w for w in report["warnings"] if w["field"] == "external_code"]
    # 10 identifiers are shared by 2 to 4 structures of one network: 16 fall back
    assert len(fallbacks) == 16
    assert len({w["reason"].split("'")[1] for w in fallbacks}) == 10

    assert await count(sites_client, status="closed") == 788
    child = (await sites_client.get("/v1/sites/3Tn8gzTdcz")).json()
    parent = (await sites_client.get("/v1/sites/PB7y8Rc7w1")).json()
    assert (child["network"], child["parent_id"]) == ("police-nationale", parent["id"])
    assert child["address"]["departement_code"] == "53"
    assert child["level"] == "departement"
    abroad = (await sites_client.get("/v1/sites/STR-970")).json()
    assert abroad["address"]["country"] == "Italie"
    assert abroad["address"]["commune_code"] is None
    zero = (await sites_client.get("/v1/sites/PANEFF4wah")).json()
    assert zero["address"]["postcode"] == "04000"

    resp = await import_path(sites_client, FRANCE_SERVICES, admin_headers)
    assert resp.status_code == 200, resp.text[:2000]
    report = resp.json()
    assert report["format"] == "france-services"
    assert (report["rows"], report["updated"], report["created"]) == (2845, 2180, 665)
    delme = (await sites_client.get("/v1/sites/Arfs8ZaVB7")).json()  # SP+ code still works
    assert delme["external_code"] == "1431"
    assert delme["coordinates"] == {"lat": 48.891022, "lon": 6.385179}
    assert delme["opening_hours"]["monday"] == [
        {"opens": "09:00", "closes": "12:00"},
        {"opens": "14:00", "closes": "16:30"},
    ]
    assert delme["contact"]["phone"] == "+33387410128"
    assert delme["sp_code"] == "Arfs8ZaVB7"  # the enrichment keeps what it does not carry
    assert delme["parent_sp_code"] is not None
    assert delme["parent_id"] is not None

    again = (await import_path(sites_client, FRANCE_SERVICES, admin_headers)).json()
    assert (again["unchanged"], again["updated"], again["created"]) == (2845, 0, 0)


async def test_export_as_network_manager(
    sites_client: httpx.AsyncClient,
    manager_headers: Callable[[str], dict[str, str]],
    admin_headers: dict[str, str],
) -> None:
    # The SP+ codes are the programme's: a CAF key claims none of them...
    resp = await import_path(sites_client, EXPORT, manager_headers("caf"), dry_run="true")
    assert resp.status_code == 200, resp.text[:2000]
    report = resp.json()
    assert (report["created"], report["rejected"]) == (0, 14763)
    assert report["networks_created"] == []
    reasons = {r["reason"] for r in report["rejected_rows"]}
    assert any(r.startswith("not your network") for r in reasons)
    assert any("only programme admins create networks" in r for r in reasons)
    header, *lines = EXPORT.read_text(encoding="utf-8").splitlines()
    cnaf = "\n".join([header, *(line for line in lines if line.split(";")[1:2] == ["CNAF"])])
    as_caf = manager_headers("caf") | {"content-type": "text/csv"}
    resp = await sites_client.post("/v1/sites/import", content=cnaf.encode(), headers=as_caf)
    assert resp.status_code == 422, resp.text[:2000]
    report = resp.json()
    assert (report["rows"], report["rejected"]) == (102, 102)
    assert {r["field"] for r in report["rejected_rows"]} == {"sp_code"}
    assert report["rejected_rows"][0]["reason"].startswith("Only programme admins set SP+")

    # ...but, once the programme has imported them, keeps its own rows up to date.
    assert (await import_path(sites_client, EXPORT, admin_headers)).status_code == 200
    resp = await sites_client.post("/v1/sites/import", content=cnaf.encode(), headers=as_caf)
    assert resp.status_code == 200, resp.text[:2000]
    report = resp.json()
    assert (report["unchanged"], report["created"], report["rejected"]) == (102, 0, 0)


async def test_export_dry_run(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    resp = await import_path(sites_client, EXPORT, admin_headers, dry_run="true")
    report = resp.json()
    assert resp.status_code == 200
    assert (report["created"], report["rejected"], report["committed"]) == (14763, 0, False)
    assert report["networks_created"]
    assert await count(sites_client) == 0
    networks = (await sites_client.get("/v1/networks", params={"limit": 500})).json()["items"]
    assert "ministere-de-la-culture" not in {n["code"] for n in networks}

"""Bulk import of our own flat format (CSV and NDJSON) through HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from tests.sites.fixtures import VALSERHONE

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"
CSV = {"content-type": "text/csv"}
NDJSON = {"content-type": "application/x-ndjson"}

HEADER = (
    "network,external_code,name,kind,address_line,postcode,commune_code,commune_name,"
    "latitude,longitude,phone,email,monday,tuesday"
)
ROWS = [
    "france-services,1,France services de Valserhône,France Services,5-9 Rue des Papetiers,"
    "1200,com01033,Valserhône,46.1060711578546,5.8260084241619,04 50 56 87 49,"
    'franceservices@ccpb01.fr,13:30 - 17:00,"09:00 - 12:00 / 13:30 - 17:00"',
    "france-services,125,France services La Poste de Vico,,Cours Jean Etienne Colonna,20160,"
    "2A348,Vico,42.1672,8.801346,04 95 26 26 52,vico@france-services.gouv.fr,,",
    "caf,CAF-53-LAVAL,Caf de la Mayenne - Laval,agence,,,53130,,,,,,,",
]


def csv_body(rows: list[str], *, sep: str = ",", bom: bool = False) -> bytes:
    text = "\n".join([HEADER, *rows]) + "\n"
    if sep != ",":
        text = text.replace(",", sep)
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode()


async def post_import(
    client: httpx.AsyncClient,
    body: bytes,
    headers: dict[str, str],
    *,
    content_type: dict[str, str] = CSV,
    **params: str,
) -> httpx.Response:
    return await client.post(
        "/v1/sites/import", content=body, headers=headers | content_type, params=params
    )


async def count_sites(client: httpx.AsyncClient) -> int:
    resp = await client.get("/v1/sites", params={"limit": 500})
    assert resp.status_code == 200, resp.text
    return len(resp.json()["items"])


@pytest.mark.parametrize(("sep", "bom"), [(",", False), (";", True), (";", False), (",", True)])
async def test_own_csv_creates_sites(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str], sep: str, bom: bool
) -> None:
    body = csv_body(ROWS, sep=sep, bom=bom)
    if sep == ";":  # the decimal comma and the hours' slash survive a semicolon file
        body = body.replace(b"46.1060711578546", b"46,1060711578546")
    resp = await post_import(sites_client, body, admin_headers)
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert report["format"] == "csv"
    assert report["committed"] is True
    assert (report["rows"], report["created"], report["rejected"]) == (3, 3, 0)

    site = (await sites_client.get("/v1/sites/france-services:1")).json()
    assert site["address"]["postcode"] == "01200"  # lost zero restored
    assert site["address"]["commune_code"] == "01033"  # prefix stripped
    assert site["address"]["departement_code"] == "01"
    assert site["address"]["region_code"] == "84"
    assert site["coordinates"] == {"lat": 46.1060711578546, "lon": 5.8260084241619}
    assert site["contact"]["phone"] == "+33450568749"
    assert site["opening_hours"]["tuesday"] == [
        {"opens": "09:00", "closes": "12:00"},
        {"opens": "13:30", "closes": "17:00"},
    ]
    laval = (await sites_client.get("/v1/sites/caf:CAF-53-LAVAL")).json()
    assert laval["address"]["commune_name"] == "Laval"  # from the INSEE reference
    assert laval["opening_hours"] is None  # no hours given: unknown, not closed


async def test_reimport_counts_unchanged_and_updated(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    first = await post_import(sites_client, csv_body(ROWS), admin_headers)
    assert first.json()["created"] == 3
    again = (await post_import(sites_client, csv_body(ROWS), admin_headers)).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)
    assert again["committed"] is False  # nothing changed
    site = (await sites_client.get("/v1/sites/caf:CAF-53-LAVAL")).json()
    assert site["version"] == 1

    changed = [*ROWS[:2], ROWS[2].replace("Laval,agence", "Laval,accueil")]
    resp = await post_import(sites_client, csv_body(changed), admin_headers)
    report = resp.json()
    assert resp.status_code == 200
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 1, 2)
    site = (await sites_client.get("/v1/sites/caf:CAF-53-LAVAL")).json()
    assert (site["kind"], site["version"]) == ("accueil", 2)


async def test_site_created_by_the_api_reimports_unchanged(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await sites_client.post("/v1/sites", json=VALSERHONE, headers=admin_headers)
    assert created.status_code == 201, created.text
    record = {
        "network": "france-services",
        "external_code": "1",
        "name": VALSERHONE["name"],
        "kind": VALSERHONE["kind"],
        "address_line": VALSERHONE["address"]["line"],
        "postcode": "01200",
        "commune_code": "01033",
        "commune_name": "Valserhône",
        "latitude": 46.1060711578546,
        "longitude": 5.8260084241619,
        "phone": "04 50 56 87 49",
        "email": "franceservices@ccpb01.fr",
    }
    resp = await post_import(
        sites_client, orjson.dumps(record) + b"\n", admin_headers, content_type=NDJSON
    )
    assert resp.json()["unchanged"] == 1, resp.text


async def test_ndjson_with_opening_hours_object(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    records: list[dict[str, Any]] = [
        {
            "network": "caf",
            "external_code": "CAF-75-11",
            "name": "Caf de Paris - Parmentier",
            "commune_code": "75111",
            "latitude": 48.8628,
            "longitude": 2.3749,
            "opening_hours": {"monday": [{"opens": "08:30", "closes": "12:30"}]},
        },
        {"network": "CNAF", "external_code": "CAF-53", "name": "Caf de la Mayenne"},
    ]
    body = b"".join(orjson.dumps(r) + b"\n" for r in records) + b"\n"
    resp = await post_import(sites_client, body, admin_headers, content_type=NDJSON)
    assert resp.status_code == 200, resp.text
    assert resp.json()["format"] == "ndjson"
    assert resp.json()["created"] == 2
    site = (await sites_client.get("/v1/sites/caf:CAF-75-11")).json()
    assert site["opening_hours"] == {"monday": [{"opens": "08:30", "closes": "12:30"}]}
    assert site["address"]["departement_code"] == "75"
    # "CNAF" is an alias of the caf network
    assert (await sites_client.get("/v1/sites/caf:CAF-53")).status_code == 200


async def test_malformed_ndjson_line_is_a_rejected_row(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    good = orjson.dumps({"network": "caf", "external_code": "A", "name": "Caf A"})
    body = good + b'\n{"network": "caf", "external_code": \n[1, 2]\n'
    resp = await post_import(sites_client, body, admin_headers, content_type=NDJSON)
    assert resp.status_code == 422
    assert resp.headers["content-type"] == PROBLEM
    report = resp.json()
    assert report["committed"] is False
    assert [(r["line"], r["field"]) for r in report["rejected_rows"]] == [(2, None), (3, None)]
    assert report["rejected_rows"][0]["reason"].startswith("invalid JSON")
    assert await count_sites(sites_client) == 0


async def test_multipart_upload(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    resp = await sites_client.post(
        "/v1/sites/import",
        files={"file": ("sites.csv", csv_body(ROWS, sep=";"), "text/csv")},
        data={"comment": "ignored"},
        headers=admin_headers,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] == 3
    ndjson = orjson.dumps({"network": "caf", "external_code": "B", "name": "Caf B"})
    resp = await sites_client.post(
        "/v1/sites/import",
        files={"file": ("sites.ndjson", ndjson, "application/octet-stream")},
        headers=admin_headers,
    )
    assert resp.status_code == 200, resp.text
    assert (resp.json()["format"], resp.json()["created"]) == ("ndjson", 1)


BAD_ROWS = [
    *ROWS,
    "caf,CAF-X,Caf X,,,99999x,,,,,,,,",
    "caf,CAF-Y,Caf Y,,,,,,91.5,2.0,,,,",
    "nowhere,Z1,Unknown network,,,,,,,,,,,",
    "caf,CAF-53-LAVAL,Caf again,,,,,,,,,,,",
]


async def test_atomic_import_rejects_everything_and_lists_rows(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    resp = await post_import(sites_client, csv_body(BAD_ROWS), admin_headers)
    assert resp.status_code == 422
    assert resp.headers["content-type"] == PROBLEM
    report = resp.json()  # a problem, with the whole report as extension members
    assert report["type"].endswith("/import-rejected")
    assert report["detail"].startswith("4 of 7 rows were rejected; nothing was written")
    assert report["errors"] == report["rejected_rows"]
    assert report["committed"] is False
    assert report["rejected"] == 4
    issues = {r["line"]: (r["field"], r["reason"]) for r in report["rejected_rows"]}
    assert issues[5] == ("postcode", "postcode must be 5 digits")
    assert issues[6][0] == "latitude"
    assert issues[7] == ("network", "unknown network 'nowhere'")
    assert issues[8][0] == "external_code"
    assert "line 4" in issues[8][1]  # the earlier line with the same key
    assert await count_sites(sites_client) == 0


async def test_keep_valid_commits_valid_rows(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    resp = await post_import(sites_client, csv_body(BAD_ROWS), admin_headers, keep_valid="true")
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert (report["created"], report["rejected"], report["committed"]) == (3, 4, True)
    assert await count_sites(sites_client) == 3
    assert (await sites_client.get("/v1/sites/caf:CAF-53-LAVAL")).json()["name"] == (
        "Caf de la Mayenne - Laval"
    )


async def test_dry_run_writes_nothing(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await post_import(sites_client, csv_body(ROWS[:1]), admin_headers)
    resp = await post_import(sites_client, csv_body(ROWS), admin_headers, dry_run="true")
    assert resp.status_code == 200
    report = resp.json()
    assert (report["dry_run"], report["committed"]) == (True, False)
    assert (report["created"], report["unchanged"]) == (2, 1)
    assert await count_sites(sites_client) == 1


async def test_network_manager_imports_own_network_only(
    sites_client: httpx.AsyncClient, manager_headers: Callable[[str], dict[str, str]]
) -> None:
    resp = await post_import(
        sites_client, csv_body(ROWS), manager_headers("caf"), keep_valid="true"
    )
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert (report["created"], report["rejected"]) == (1, 2)
    assert {r["field"] for r in report["rejected_rows"]} == {"network"}
    assert all(r["reason"].startswith("not your network") for r in report["rejected_rows"])


async def test_refusals(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str], sites_app: Any
) -> None:
    anonymous = await post_import(sites_client, csv_body(ROWS), {})
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == PROBLEM

    json_body = await post_import(
        sites_client, b"[]", admin_headers, content_type={"content-type": "application/json"}
    )
    assert json_body.status_code == 415
    assert json_body.headers["content-type"] == PROBLEM

    unknown = await post_import(sites_client, b"network,external_code,colour\n", admin_headers)
    assert unknown.status_code == 422
    assert unknown.json()["errors"] == [{"field": "colour", "reason": "unknown column"}]

    sites_app.state.settings.import_max_bytes = 100
    too_big = await post_import(sites_client, csv_body(ROWS), admin_headers)
    assert too_big.status_code == 413
    assert too_big.headers["content-type"] == PROBLEM
    assert await count_sites(sites_client) == 0


async def test_import_that_closes_a_site_starts_a_new_status_period(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await post_import(sites_client, csv_body(ROWS), admin_headers)
    closed = await sites_client.post(
        "/v1/sites/caf:CAF-53-LAVAL/close",
        json={"status": "temporarily_closed", "reopens_on": "2099-01-01", "reason": "travaux"},
        headers=admin_headers,
    )
    assert closed.status_code == 200, closed.text
    header = HEADER + ",status"
    rows = [r + ",closed" for r in ROWS]
    body = ("\n".join([header, *rows]) + "\n").encode()
    report = (await post_import(sites_client, body, admin_headers)).json()
    assert report["updated"] == 3, report
    status = (await sites_client.get("/v1/sites/caf:CAF-53-LAVAL")).json()["status"]
    assert status["state"] == "closed"
    assert (status["reason"], status["reopens_on"]) == (None, None)
    assert status["since"] is not None

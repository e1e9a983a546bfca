"""Broken or hostile files: a clear 422, never a 500, never a partial write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from tests.sites.test_import import NDJSON, PROBLEM, count_sites, post_import
from tests.support import ServiceDB, serve_asgi

pytestmark = pytest.mark.anyio

MULTIPART = {"content-type": "multipart/form-data; boundary=XyZ"}
OWN_HEADER = "network,external_code,name"
# Minimal headers of the programme's export and of the France services list.
EXPORT_HEADER = (
    "Code SP+ de la structure;Intitulé du réseau;Intitulé de la structure;"
    "Identifiant de la structure;Adresse;Ville"
)
FS_HEADER = "id_fs,lib_fs,adresse,complement_adresse,lib_com"


def lines(*rows: str) -> bytes:
    return ("\n".join(rows) + "\n").encode()


def rejected(resp: httpx.Response) -> dict[int, tuple[str | None, str]]:
    return {r["line"]: (r["field"], r["reason"]) for r in resp.json()["rejected_rows"]}


# --- 1. encoding -------------------------------------------------------------------


async def test_latin1_csv_is_a_file_problem_naming_the_line(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    resp = await post_import(
        sites_client, b"network,external_code,name\ncaf,A2,Caf \xe9\n", admin_headers
    )
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == PROBLEM
    problem = resp.json()
    assert problem["errors"] == [{"line": 2, "reason": "byte 0xE9 is not UTF-8"}]
    assert "line 2" in problem["detail"]
    assert "UTF-8" in problem["detail"]


async def test_non_utf8_byte_deep_in_the_file_after_batches(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    good = [f"caf,G{i},Caf number {i} with a long enough name to fill blocks" for i in range(3000)]
    body = lines(OWN_HEADER, *good) + b"caf,BAD,Caf \xe9\n"  # line 3002, past many 8 KB blocks
    resp = await post_import(sites_client, body, admin_headers, keep_valid="true")
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0]["line"] == 3002
    assert await count_sites(sites_client) == 0  # a broken file writes nothing, whatever the mode


# --- 2, 3. multipart -------------------------------------------------------------------

PART_HEAD = b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="f.csv"\r\n\r\n'


@pytest.mark.parametrize(
    "body",
    [
        b"garbage\r\n\r\n--",
        b"--XyZ\r\nContent-Disposition form-data\r\n\r\nx\r\n--XyZ--\r\n",  # header without colon
    ],
    ids=["no-boundary", "header-without-colon"],
)
async def test_malformed_multipart_is_a_problem_naming_file(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str], body: bytes
) -> None:
    resp = await post_import(sites_client, body, admin_headers, content_type=MULTIPART)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["errors"][0]["field"] == "file"


async def test_truncated_multipart_is_not_imported(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = PART_HEAD + b"network,external_code,name\ncaf,T1,x\n"  # no closing boundary
    resp = await post_import(sites_client, body, admin_headers, content_type=MULTIPART)
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"] == [
        {"field": "file", "reason": "the upload is incomplete: no closing boundary"}
    ]
    assert await count_sites(sites_client) == 0

    complete = body + b"\r\n--XyZ--\r\n"
    resp = await post_import(sites_client, complete, admin_headers, content_type=MULTIPART)
    assert resp.status_code == 200, resp.text
    assert resp.json()["created"] == 1


async def test_large_multipart_upload_is_spooled_whole(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    rows = [f"caf,L{i},Caf {i} {'x' * 200}" for i in range(6000)]  # ~1.3 MB: several blocks
    body = PART_HEAD + lines(OWN_HEADER, *rows) + b"\r\n--XyZ--\r\n"
    resp = await post_import(sites_client, body, admin_headers, content_type=MULTIPART)
    assert resp.status_code == 200, resp.text
    assert (resp.json()["rows"], resp.json()["created"]) == (6000, 6000)


# --- 4. quoting and line breaks ----------------------------------------------------------


async def test_stray_quote_is_a_file_problem_not_one_row(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = b'network,external_code,name\ncaf,Q0,ok\ncaf,Q1,"abc\ncaf,Q2,def\ncaf,Q3,ghi\n'
    resp = await post_import(sites_client, body, admin_headers, keep_valid="true")
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == PROBLEM
    problem = resp.json()
    assert problem["errors"][0]["line"] == 3  # where the unclosed quote opens
    assert "line 3" in problem["detail"]
    assert await count_sites(sites_client) == 0


async def test_text_after_a_closing_quote_is_a_file_problem(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = b'network,external_code,name\ncaf,Q1,"abc"def\n'
    resp = await post_import(sites_client, body, admin_headers)
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0]["line"] == 2


async def test_runaway_quoted_field_fails_fast(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = b'network,external_code,name\ncaf,R1,"' + b"x" * (2 * 1024 * 1024) + b'"\n'
    resp = await post_import(sites_client, body, admin_headers)
    assert resp.status_code == 422, resp.text
    # The record's size limit (the same MiB as csv's field limit) stops it first.
    assert resp.json()["errors"] == [
        {"line": 2, "reason": "is longer, over the limit of 1048576 characters"}
    ]


async def test_own_format_refuses_line_breaks_and_normalises_tabs(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = (
        b"network,external_code,name,address_line\n"
        b'caf,N1,"Caf\nde Laval",\n'
        b'caf,N2,Caf de Laval,"1 rue\r\nde l\'Eglise"\n'
        b'caf,N3,"Caf\tde\tMayenne",\n'
    )
    resp = await post_import(sites_client, body, admin_headers, keep_valid="true")
    assert resp.status_code == 200, resp.text
    issues = rejected(resp)
    assert issues[2] == ("name", "contains a line break (U+000A): not allowed in this field")
    assert issues[4][0] == "address_line"
    assert resp.json()["created"] == 1
    site = (await sites_client.get("/v1/sites/caf:N3")).json()
    assert site["name"] == "Caf de Mayenne"


async def test_published_formats_collapse_line_breaks(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = lines(FS_HEADER, '"9001","France services\nde Test","1 rue\r\ndu\tPont",,"Laval"')
    resp = await post_import(sites_client, body, admin_headers)
    assert resp.status_code == 200, resp.text
    site = (await sites_client.get("/v1/sites/france-services:9001")).json()
    assert site["name"] == "France services de Test"
    assert site["address"]["line"] == "1 rue du Pont"

    export = lines(EXPORT_HEADER, 'Xq1;CNAF;"Caf\nde Test";;"2 rue\ndu Lac";LAVAL')
    resp = await post_import(sites_client, export, admin_headers)
    assert resp.status_code == 200, resp.text
    site = (await sites_client.get("/v1/sites/Xq1")).json()
    assert (site["name"], site["address"]["line"]) == ("Caf de Test", "2 rue du Lac")


# --- 5. control characters (PostgreSQL refuses NUL in text) -------------------------------


async def test_nul_and_control_characters_reject_the_row_in_every_format(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    own = lines(OWN_HEADER, "caf,C1,Caf\x00Laval", "caf,C2,Caf\x1bLaval", "caf,C3,Caf Laval")
    resp = await post_import(sites_client, own, admin_headers, keep_valid="true")
    assert resp.status_code == 200, resp.text
    assert rejected(resp) == {
        2: ("name", "contains a control character (U+0000): not allowed in this field"),
        3: ("name", "contains a control character (U+001B): not allowed in this field"),
    }

    records: list[dict[str, Any]] = [
        {"network": "caf", "external_code": "J1", "name": "Caf", "commune_name": "La\x00val"},
        {"network": "caf", "external_code": "J\x002", "name": "Caf"},
        {"network": "caf", "external_code": "J3", "name": "Caf"},
    ]
    body = b"".join(orjson.dumps(r) + b"\n" for r in records)
    resp = await post_import(
        sites_client, body, admin_headers, content_type=NDJSON, keep_valid="true"
    )
    assert resp.status_code == 200, resp.text
    assert {line: field for line, (field, _) in rejected(resp).items()} == {
        1: "commune_name",
        2: "external_code",
    }

    fs = lines(FS_HEADER, '"9101","France services\x00",,,', '"9102","France services",,,"Laval"')
    resp = await post_import(sites_client, fs, admin_headers, keep_valid="true")
    assert resp.status_code == 200, resp.text
    assert {line: field for line, (field, _) in rejected(resp).items()} == {2: "lib_fs"}

    export = lines(EXPORT_HEADER, "Xn1;CNAF;Caf;;2 rue\x00du Lac;LAVAL", "Xn2;CNAF;Caf;;;LAVAL")
    resp = await post_import(sites_client, export, admin_headers, keep_valid="true")
    assert resp.status_code == 200, resp.text
    assert {line: field for line, (field, _) in rejected(resp).items()} == {2: "Adresse"}
    assert await count_sites(sites_client) == 4  # C3, J3, 9102, Xn2


# --- 6. lengths of every column --------------------------------------------------------

OWN_LIMITS = {
    "external_code": 64,
    "sp_code": 32,
    "parent_sp_code": 32,
    "name": 300,
    "kind": 200,
    "address_line": 300,
    "address_complement": 300,
    "commune_name": 200,
    "country": 100,
    "phone": 32,
    "email": 254,
    "website": 500,
    "appointment_url": 500,
}


def too_long(field: str, limit: int) -> str:
    if field == "email":
        return "a" * limit + "@example.org"
    if field in ("website", "appointment_url"):
        return "https://example.org/" + "a" * limit
    if field == "phone":
        return "+1" + "2" * limit  # abroad: kept as given, so only the length applies
    return "A" * (limit + 1)


async def test_over_long_values_of_our_own_format_reject_the_row(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    records = []
    for i, (field, limit) in enumerate(OWN_LIMITS.items()):
        record = {"network": "caf", "external_code": f"O{i}", "name": "Caf", "country": "Italie"}
        records.append(record | {field: too_long(field, limit)})
    records.append({"network": "caf", "external_code": "OK", "name": "Caf"})
    body = b"".join(orjson.dumps(r) + b"\n" for r in records)
    resp = await post_import(
        sites_client, body, admin_headers, content_type=NDJSON, keep_valid="true"
    )
    assert resp.status_code == 200, resp.text
    assert {line: field for line, (field, _) in rejected(resp).items()} == {
        i + 1: field for i, field in enumerate(OWN_LIMITS)
    }
    assert resp.json()["created"] == 1

    columns = ["network", *OWN_LIMITS]  # the same records as CSV
    rows = [",".join(str(r.get(c, "")) for c in columns) for r in records]
    resp = await post_import(sites_client, lines(",".join(columns), *rows), admin_headers)
    assert resp.status_code == 422, resp.text
    assert {line: field for line, (field, _) in rejected(resp).items()} == {
        i + 2: field for i, field in enumerate(OWN_LIMITS)
    }


async def test_over_long_france_services_id_rejects_the_row(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    long = "x" * 400
    body = lines(
        FS_HEADER,
        f'"{"9" * 65}","France services",,,',
        f'"9201","{long}","{long}","{long}","{long}"',
    )
    resp = await post_import(sites_client, body, admin_headers, keep_valid="true")
    assert resp.status_code == 200, resp.text
    assert rejected(resp) == {2: ("external_code", "longer than 64 characters")}
    site = (await sites_client.get("/v1/sites/france-services:9201")).json()
    assert len(site["name"]) == 300  # published data: cut, with a warning
    assert len(site["address"]["commune_name"]) == 200
    assert {w["field"] for w in resp.json()["warnings"]} >= {"name", "commune_name"}


async def test_over_long_export_values_are_cut_or_dropped(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    network = "Réseau " + "n" * 300  # a new network: its name is cut to the column
    long = "y" * 400
    body = lines(EXPORT_HEADER, f"Xl1;{network};{long};{'7' * 70};{long};{long}")
    resp = await post_import(sites_client, body, admin_headers)
    assert resp.status_code == 200, resp.text
    site = (await sites_client.get("/v1/sites/Xl1")).json()
    assert site["external_code"] == "Xl1"  # the identifier was too long
    assert len(site["name"]) == 300
    assert len(site["address"]["line"]) == 300
    assert len(site["address"]["commune_name"]) == 200
    created = resp.json()["networks_created"]
    net = (await sites_client.get(f"/v1/networks/{created[0]}")).json()
    assert len(net["name"]) == 255


# --- 7. the rejected import is a problem -------------------------------------------------


async def test_rejected_import_answers_a_problem_with_the_report(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = lines(OWN_HEADER, "caf,A1,Caf A", "nowhere,A2,Caf B", "caf,A3,")
    resp = await post_import(sites_client, body, admin_headers)
    assert resp.status_code == 422
    assert resp.headers["content-type"] == PROBLEM
    problem = resp.json()
    assert problem["type"].endswith("/import-rejected")
    assert problem["title"] == "The import was rejected"
    assert problem["detail"] == (
        "2 of 3 rows were rejected; nothing was written "
        "(send keep_valid=true to write the valid rows)."
    )
    assert problem["errors"] == [
        {"line": 3, "field": "network", "reason": "unknown network 'nowhere'"},
        {"line": 4, "field": "name", "reason": "required"},
    ]
    assert problem["rejected_rows"] == problem["errors"]
    assert (problem["created"], problem["rejected"], problem["committed"]) == (1, 2, False)

    dry = await post_import(sites_client, body, admin_headers, dry_run="true")
    assert (dry.status_code, dry.headers["content-type"]) == (200, "application/json")


# --- 8. atomicity across batches ---------------------------------------------------------


@pytest.fixture
async def small_batches_client(sites_db: ServiceDB) -> AsyncIterator[httpx.AsyncClient]:
    from spp_sites.app import create_app
    from spp_sites.settings import SitesSettings

    await sites_db.reset()
    settings = SitesSettings(database_url=sites_db.url, import_batch_size=2, access_log=False)
    app: FastAPI = create_app(settings)
    async with serve_asgi(app) as client:
        yield client


ATOMIC_ROWS = [f"caf,B{i},Caf {i}" for i in range(7)] + ["nowhere,B7,Bad"] + ["caf,B8,Caf 8"]


async def test_atomic_import_keeps_nothing_of_flushed_batches(
    small_batches_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    # 4 batches of 2 are written before the bad row of line 9
    resp = await post_import(small_batches_client, lines(OWN_HEADER, *ATOMIC_ROWS), admin_headers)
    assert resp.status_code == 422, resp.text
    assert rejected(resp) == {9: ("network", "unknown network 'nowhere'")}
    assert await count_sites(small_batches_client) == 0


async def test_keep_valid_across_batches_keeps_exactly_the_valid_rows(
    small_batches_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = lines(OWN_HEADER, *ATOMIC_ROWS)
    resp = await post_import(small_batches_client, body, admin_headers, keep_valid="true")
    assert resp.status_code == 200, resp.text
    assert (resp.json()["created"], resp.json()["rejected"]) == (8, 1)
    items = (await small_batches_client.get("/v1/sites", params={"limit": 500})).json()["items"]
    assert sorted(s["external_code"] for s in items) == sorted(f"B{i}" for i in (*range(7), 8))


async def test_a_file_error_after_batches_were_sent_keeps_nothing(
    small_batches_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """A broken CSV record found while earlier batches are being written."""
    good = [f"caf,PIPE-{i},Caf {i}" for i in range(9)]
    body = ("network,external_code,name\n" + "\n".join(good) + '\ncaf,PIPE-X,"unclosed\n').encode()
    resp = await small_batches_client.post(
        "/v1/sites/import",
        content=body,
        headers=admin_headers | {"content-type": "text/csv"},
        params={"keep_valid": "true"},
    )
    assert resp.status_code == 422, resp.text
    listing = await small_batches_client.get("/v1/sites", params={"network": "caf"})
    assert listing.json()["items"] == []


async def test_absurd_headers_and_boundaries_are_422_fast(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    wide = (",".join(f"c{i}" for i in range(100_000)) + "\n").encode()
    resp = await sites_client.post(
        "/v1/sites/import", content=wide, headers=admin_headers | {"content-type": "text/csv"}
    )
    assert resp.status_code == 422
    assert "columns" in resp.json()["detail"]
    boundary = await sites_client.post(
        "/v1/sites/import",
        content=b"x",
        headers=admin_headers | {"content-type": "multipart/form-data; boundary=" + "b" * 5000},
    )
    assert boundary.status_code == 422
    assert boundary.headers["content-type"] == "application/problem+json"

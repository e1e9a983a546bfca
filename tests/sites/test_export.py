"""The registry's open-data export: ``GET /v1/sites/export`` and its datapackage.json.

Run on the suite's database (SQLite, or PostgreSQL with SPP_TEST_DATABASE_URL),
so both paths of the kit's export are checked: COPY on PostgreSQL, a
server-side cursor on SQLite. The datapackage.json is checked against the
Frictionless Table Schema specification by hand (the ``frictionless`` library
is not installed): descriptor shape, field types, and every value of the CSV
against its field's type and constraints.
"""

from __future__ import annotations

import csv
import io
import re
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from spp_shared.kit.db import Database
from spp_shared.kit.export import ExportFormat, stream_rows
from spp_sites import service
from spp_sites.repository import SiteFilters
from tests.sites.test_import import ROWS, csv_body, post_import
from tests.sites.test_import_programme import EXPORT, import_path

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"


async def seed_three(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    resp = await post_import(client, csv_body(ROWS), headers)
    assert resp.status_code == 200, resp.text


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def jsonl_rows(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines()]


async def test_csv_and_json_lines_hold_the_same_sites_for_anyone(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await seed_three(sites_client, admin_headers)
    # The suite's client calls as the gateway does for an anonymous caller.
    as_csv = await sites_client.get("/v1/sites/export")
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert as_csv.headers["content-disposition"] == 'attachment; filename="sites.csv"'
    as_jsonl = await sites_client.get("/v1/sites/export", params={"format": "jsonl"})
    assert as_jsonl.headers["content-type"] == "application/x-ndjson"
    table, objects = csv_rows(as_csv.text), jsonl_rows(as_jsonl.text)
    names = [f.name for f in service.EXPORT_FIELDS]
    assert list(table[0]) == names
    assert [list(o) for o in objects] == [names] * 3
    assert [r["id"] for r in table] == sorted(r["id"] for r in table)  # id order
    assert [r["id"] for r in table] == [o["id"] for o in objects]

    valserhone = next(o for o in objects if o["external_code"] == "1")
    site = (await sites_client.get("/v1/sites/france-services:1")).json()
    assert valserhone["latitude"] == site["coordinates"]["lat"]
    assert valserhone["opening_hours"] == site["opening_hours"]
    assert valserhone["status"] == "open"
    assert valserhone["postcode"] == "01200"
    # The same instant on both databases, UTC with microseconds.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", valserhone["updated_at"])
    assert datetime.fromisoformat(valserhone["updated_at"]) == datetime.fromisoformat(
        site["updated_at"]
    )
    row = next(r for r in table if r["id"] == valserhone["id"])
    assert orjson.loads(row["opening_hours"]) == site["opening_hours"]
    assert float(row["latitude"]) == site["coordinates"]["lat"]
    assert row["updated_at"] == valserhone["updated_at"]
    assert row["sp_code"] == ""  # empty, not "None"

    caf = await sites_client.get("/v1/sites/export", params={"network": "caf"})
    assert [r["network"] for r in csv_rows(caf.text)] == ["caf"]


async def test_the_export_answers_304_until_a_site_changes(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    empty = await sites_client.get("/v1/sites/export")
    assert empty.text.count("\n") == 1  # the header row only
    assert "last-modified" not in empty.headers
    await seed_three(sites_client, admin_headers)
    first = await sites_client.get("/v1/sites/export")
    tag = first.headers["etag"]
    assert tag.startswith('W/"')
    assert tag != empty.headers["etag"]
    assert first.headers["last-modified"].endswith("GMT")
    again = await sites_client.get("/v1/sites/export", headers={"If-None-Match": tag})
    assert again.status_code == 304
    assert again.headers["etag"] == tag
    assert again.content == b""
    # Another format or other filters are another representation.
    other = await sites_client.get(
        "/v1/sites/export", params={"format": "jsonl"}, headers={"If-None-Match": tag}
    )
    assert other.status_code == 200
    since = await sites_client.get(
        "/v1/sites/export",
        headers={"If-Modified-Since": first.headers["last-modified"]},
    )
    assert since.status_code == 304

    site = await sites_client.get("/v1/sites/caf:CAF-53-LAVAL")
    patched = await sites_client.patch(
        "/v1/sites/caf:CAF-53-LAVAL",
        json={"name": "Caf de Laval"},
        headers=admin_headers | {"If-Match": site.headers["etag"]},
    )
    assert patched.status_code == 200, patched.text
    changed = await sites_client.get("/v1/sites/export", headers={"If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != tag


async def test_since_pulls_only_the_sites_changed_at_or_after_it(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await seed_three(sites_client, admin_headers)
    before = jsonl_rows(
        (await sites_client.get("/v1/sites/export", params={"format": "jsonl"})).text
    )
    latest = max(o["updated_at"] for o in before)
    site = await sites_client.get("/v1/sites/caf:CAF-53-LAVAL")
    await sites_client.patch(
        "/v1/sites/caf:CAF-53-LAVAL",
        json={"name": "Caf de Laval"},
        headers=admin_headers | {"If-Match": site.headers["etag"]},
    )
    after = (datetime.fromisoformat(latest) + timedelta(microseconds=1)).isoformat()
    pulled = await sites_client.get("/v1/sites/export", params={"format": "jsonl", "since": after})
    assert [o["name"] for o in jsonl_rows(pulled.text)] == ["Caf de Laval"]
    # A time without an offset is UTC; a time in the future gives no row.
    naive = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    future = await sites_client.get("/v1/sites/export", params={"since": naive})
    assert future.status_code == 200
    assert csv_rows(future.text) == []
    bad = await sites_client.get("/v1/sites/export", params={"since": "yesterday"})
    assert bad.status_code == 422
    assert bad.headers["content-type"] == PROBLEM
    bad_format = await sites_client.get("/v1/sites/export", params={"format": "xlsx"})
    assert bad_format.status_code == 422


# --- datapackage.json against the Table Schema specification -------------------

TABLE_SCHEMA_TYPES = {
    "string", "number", "integer", "boolean", "object", "array", "date", "time",
    "datetime", "year", "yearmonth", "duration", "geopoint", "geojson", "any",
}  # fmt: skip
CONSTRAINTS = {
    "required",
    "unique",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "pattern",
    "enum",
}
NAME = re.compile(r"^[a-z0-9._-]+$")  # data package and resource names


def check_value(field: dict[str, Any], text: str) -> None:
    """One CSV cell against its field (Table Schema: types, formats, constraints)."""
    constraints = field.get("constraints", {})
    if text == "":
        assert not constraints.get("required"), f"{field['name']} is required"
        return
    kind = field["type"]
    if kind == "number":
        float(text)
    elif kind == "integer":
        int(text)
    elif kind == "boolean":
        assert text in {"true", "false"}
    elif kind == "date":
        date.fromisoformat(text)
    elif kind == "datetime":
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", text), text
    elif kind == "object":
        assert isinstance(orjson.loads(text), dict)
    if "enum" in constraints:
        assert text in constraints["enum"], (field["name"], text)
    if "maxLength" in constraints:
        assert len(text) <= constraints["maxLength"]


def check_descriptor(package: dict[str, Any]) -> dict[str, Any]:
    assert package["profile"] == "tabular-data-package"
    assert NAME.match(package["name"])
    assert package["licenses"][0]["name"] == "etalab-2.0"
    (resource,) = package["resources"]
    assert resource["profile"] == "tabular-data-resource"
    assert NAME.match(resource["name"])
    # A relative path: POSIX, not absolute, no "..".
    assert not resource["path"].startswith("/")
    assert ".." not in resource["path"].split("/")
    assert resource["format"] == "csv"
    assert resource["encoding"] == "utf-8"
    schema = resource["schema"]
    names = [f["name"] for f in schema["fields"]]
    assert len(names) == len(set(names))
    for f in schema["fields"]:
        assert set(f) <= {"name", "type", "format", "description", "constraints", "title"}
        assert f["type"] in TABLE_SCHEMA_TYPES
        assert set(f.get("constraints", {})) <= CONSTRAINTS
        assert isinstance(f.get("description", ""), str)
    assert set(schema["primaryKey"]) <= set(names)
    return resource


async def test_the_datapackage_describes_the_csv_it_points_to(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await seed_three(sites_client, admin_headers)
    resp = await sites_client.get("/v1/sites/export/datapackage.json")
    assert resp.status_code == 200
    resource = check_descriptor(resp.json())
    fields = resource["schema"]["fields"]
    by_name = {f["name"]: f for f in fields}
    assert by_name["updated_at"]["type"] == "datetime"
    assert by_name["latitude"]["type"] == "number"
    assert by_name["opening_hours"]["type"] == "object"
    assert by_name["status"]["constraints"]["enum"] == ["open", "temporarily_closed", "closed"]
    assert by_name["name"]["constraints"]["required"] is True
    assert "required" not in by_name["sp_code"].get("constraints", {})
    assert all(f["description"] for f in fields)

    # The path resolves against the descriptor's URL to the export's CSV.
    data = await sites_client.get(f"/v1/sites/export/{resource['path']}")
    assert data.status_code == 200
    assert data.headers["content-type"].startswith(resource["mediatype"])
    table = list(csv.reader(io.StringIO(data.text)))
    assert table[0] == [f["name"] for f in fields]
    assert len(table) == 4
    for row in table[1:]:
        for f, cell in zip(fields, row, strict=True):
            check_value(f, cell)
    keys = [tuple(r[table[0].index(k)] for k in resource["schema"]["primaryKey"]) for r in table]
    assert len(keys) == len(set(keys))


# --- the whole SP+ registry: every value valid, memory flat --------------------


async def drain(db: Database, filters: SiteFilters, fmt: ExportFormat) -> tuple[int, int, int]:
    """Stream the export to nowhere: (rows, bytes, traced peak of the stream)."""
    plan = await _plan(db, filters, fmt)
    rows = size = 0
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        async for chunk in stream_rows(db, plan.query, plan.fields, fmt):
            size += len(chunk)
            rows += chunk.count(b"\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return rows, size, peak


async def _plan(db: Database, filters: SiteFilters, fmt: ExportFormat) -> Any:
    async with db.read_sessionmaker() as session:
        return await service.plan_export(session, filters, None, fmt)


async def test_the_whole_registry_exports_valid_values_in_flat_memory(
    sites_client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    sites_app: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    resp = await import_path(sites_client, EXPORT, admin_headers)
    assert resp.json()["created"] == 14763, resp.text[:500]
    db: Database = sites_app.state.db
    small = SiteFilters(network="france-travail")
    for fmt in ExportFormat:
        await drain(db, small, fmt)  # compiled statements and caches, once
        all_rows, all_bytes, all_peak = await drain(db, SiteFilters(), fmt)
        few_rows, few_bytes, few_peak = await drain(db, small, fmt)
        header = fmt is ExportFormat.csv
        assert all_rows == 14763 + header
        assert 0 < few_rows < all_rows / 10
        with capsys.disabled():
            print(
                f"\nexport {fmt.value}: {all_rows - header:,} rows, {all_bytes / 1e6:.1f} MB, "
                f"traced peak {all_peak / 1e3:.0f} KB; {few_rows - header:,} rows, "
                f"{few_bytes / 1e3:.0f} KB, peak {few_peak / 1e3:.0f} KB"
            )
        # Twelve times the rows in about the same memory: a partition of rows
        # (SQLite) or a few COPY chunks (PostgreSQL), never the export (3.5 MB
        # of CSV, 10-12 MB of JSON Lines).
        # An absolute bound: the small export's own peak (0.4 to 1.9 MB seen)
        # depends on where its last batch ends, so a bound relative to it
        # failed in CI while the whole export stayed under 2 MB.
        assert all_peak < 2_500_000

    datapackage = (await sites_client.get("/v1/sites/export/datapackage.json")).json()
    fields = datapackage["resources"][0]["schema"]["fields"]
    # Every value of the real registry against the Table Schema, on the
    # database of this run.
    plan = await _plan(db, SiteFilters(), ExportFormat.csv)
    text = b"".join([c async for c in stream_rows(db, plan.query, plan.fields, ExportFormat.csv)])
    reader = csv.reader(io.StringIO(text.decode()))
    assert next(reader) == [f["name"] for f in fields]
    count = 0
    for row in reader:
        for f, cell in zip(fields, row, strict=True):
            check_value(f, cell)
        count += 1
    assert count == 14763

"""Trojan Source beyond names, through the API and the importer (issue 7, attack review).

U+202E (right-to-left override) was stored in a site's external code (and the
``network:external_code`` lookup resolved with it), kind, address and close
reason. Every single-line text now refuses bidirectional controls and line
separators; codes also refuse invisible characters; free address text keeps
zero-width characters (the programme's export has one in a town's name).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.sites.fixtures import BRON
from tests.sites.test_import import NDJSON, post_import
from tests.sites.test_import_robustness import EXPORT_HEADER, FS_HEADER, lines, rejected
from tests.sites.test_sites_api import etag

pytestmark = pytest.mark.anyio

RLO = "\u202e"


def with_field(path: str, value: str) -> dict[str, Any]:
    body = {**BRON, "address": dict(BRON["address"])}
    if path.startswith("address."):
        body["address"][path.removeprefix("address.")] = value
    else:
        body[path] = value
    return body


def fields(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 422, resp.text
    return [e["field"] for e in resp.json()["errors"]]


@pytest.mark.parametrize("char", [RLO, "\u2066", "\u2028"])
@pytest.mark.parametrize(
    "path", ["external_code", "kind", "address.line", "address.complement", "address.commune_name"]
)
async def test_api_refuses_bidi_and_separators_in_every_text(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str], path: str, char: str
) -> None:
    value = f"ab{char}cd"
    created = await sites_client.post(
        "/v1/sites", json=with_field(path, value), headers=admin_headers
    )
    assert fields(created) == [path]
    if not (path == "external_code" and char.isspace()):  # a code's pattern refuses spaces
        assert f"U+{ord(char):04X}" in created.text


async def test_external_code_with_rlo_is_neither_stored_nor_looked_up(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    code = f"CAF-{RLO}1"
    created = await sites_client.post(
        "/v1/sites", json=BRON | {"external_code": code}, headers=admin_headers
    )
    assert fields(created) == ["external_code"]
    site = (await sites_client.post("/v1/sites", json=BRON, headers=admin_headers)).json()
    patched = await sites_client.patch(
        f"/v1/sites/{site['id']}",
        json={"external_code": "X\u00ad1"},  # soft hyphen: invisible in a code
        headers=admin_headers | {"If-Match": etag(site)},
    )
    assert fields(patched) == ["external_code"]
    found = await sites_client.get(f"/v1/sites/{BRON['network']}:{code}")
    assert found.status_code == 404, found.text


async def test_close_reason_refuses_rlo(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    site = (await sites_client.post("/v1/sites", json=BRON, headers=admin_headers)).json()
    closed = await sites_client.post(
        f"/v1/sites/{site['id']}/close",
        json={"reason": f"Travaux{RLO} jusqu'en mai"},
        headers=admin_headers,
    )
    assert fields(closed) == ["reason"]


async def test_free_address_text_keeps_zero_width_characters(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    town = "BASSE-\u200bTERRE"  # as in the programme's export
    created = await sites_client.post(
        "/v1/sites", json=with_field("address.commune_name", town), headers=admin_headers
    )
    assert created.status_code == 201, created.text
    assert created.json()["address"]["commune_name"] == town


async def test_import_rejects_the_row_naming_the_field(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    header = "network,external_code,name,kind,address_line,address_complement,commune_name"
    rows = [
        f"caf,H{RLO}1,Caf,,,,",
        f"caf,H2,Caf,agence{RLO},,,",
        f"caf,H3,Caf,,1 rue{RLO} du Lac,,",
        "caf,H4,Caf,,,Bât.\u2029B,",
        f"caf,H5,Caf,,,,LA{RLO}VAL",
        "caf,H\u00ad6,Caf,,,,",
        "caf,H7,Caf,,,,BASSE-\u200bTERRE",
    ]
    resp = await post_import(sites_client, lines(header, *rows), admin_headers, dry_run="true")
    assert resp.status_code == 200, resp.text
    assert {n: f for n, (f, _) in rejected(resp).items()} == {
        2: "external_code",
        3: "kind",
        4: "address_line",
        5: "address_complement",
        6: "commune_name",
        7: "external_code",
    }
    records = [
        {"network": "caf", "external_code": "J1", "name": "Caf", "kind": f"a{RLO}b"},
        {"network": "caf", "external_code": f"J{RLO}2", "name": "Caf"},
        {"network": "caf", "external_code": "J3", "name": "Caf", "commune_name": "A\u200bB"},
    ]
    body = b"".join(orjson.dumps(r) + b"\n" for r in records)
    resp = await post_import(sites_client, body, admin_headers, content_type=NDJSON, dry_run="true")
    assert {n: f for n, (f, _) in rejected(resp).items()} == {1: "kind", 2: "external_code"}


async def test_published_formats_reject_bidi_in_any_cell(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    export = lines(
        EXPORT_HEADER,
        f"Xb1;CNAF;Caf;;2 rue{RLO} du Lac;LAVAL",
        "Xb2;CNAF;Caf;;;BASSE-\u200bTERRE",
        "Xb3;CNAF;Caf;ID\u200b3;;LAVAL",  # an invisible identifier: the SP+ code is used
    )
    resp = await post_import(sites_client, export, admin_headers, dry_run="true")
    assert resp.status_code == 200, resp.text
    assert {n: f for n, (f, _) in rejected(resp).items()} == {2: "Adresse"}
    warned = {(w["line"], w["field"]) for w in resp.json()["warnings"]}
    assert (4, "external_code") in warned
    fs = lines(FS_HEADER, f'"9201","France services",,"Bât{RLO} B",', '"9\u200b202","FS",,,')
    resp = await post_import(sites_client, fs, admin_headers, dry_run="true")
    assert {n: f for n, (f, _) in rejected(resp).items()} == {
        2: "complement_adresse",
        3: "external_code",
    }

"""Names without Trojan Source characters; If-Match lists where `*` stands alone."""

from __future__ import annotations

import httpx
import pytest

from tests.sites.fixtures import BRON
from tests.sites.test_import import NDJSON, post_import
from tests.sites.test_sites_api import etag

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"

# Bidirectional controls, zero-width and other invisible characters, line
# separators (Unicode's advice on Trojan Source): a few of each.
HIDDEN = [
    *("\u202e", "\u2066", "\u200f", "\u061c", "\u200b", "\u200d", "\u2060", "\ufeff"),
    # The soft hyphen, the combining grapheme joiner, the Mongolian vowel
    # separator, line and paragraph separators, tag characters (issue 7).
    *("\u00ad", "\u034f", "\u180e", "\u2028", "\u2029", "\U000e0041", "\U000e007f"),
]
# Refused in every single-line text, not only in names.
NOT_SINGLE_LINE = {"\u202e", "\u2066", "\u200f", "\u061c", "\u2028", "\u2029"}
# Export header (SP+ structures) and one row, the name to be filled in.
EXPORT_HEADER = (
    "Code SP+ de la structure;Intitulé du réseau;Intitulé de la typologie;"
    "Intitulé de la structure;Intitulé structure usager\n"
)


def field_of(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == PROBLEM
    return [str(e["field"]) for e in resp.json()["errors"]]


@pytest.mark.parametrize("char", HIDDEN)
async def test_names_refuse_bidi_and_zero_width_characters(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str], char: str
) -> None:
    name = f"Caf du Rhône{char} - Lyon"
    created = await sites_client.post(
        "/v1/sites", json=BRON | {"name": name}, headers=admin_headers
    )
    assert field_of(created) == ["name"]
    assert f"{ord(char):04X}" in created.text

    site = (await sites_client.post("/v1/sites", json=BRON, headers=admin_headers)).json()
    patched = await sites_client.patch(
        f"/v1/sites/{site['id']}",
        json={"name": name},
        headers=admin_headers | {"If-Match": etag(site)},
    )
    assert field_of(patched) == ["name"]

    network = await sites_client.post(
        "/v1/networks", json={"code": "reseau-x", "name": f"Réseau{char}X"}, headers=admin_headers
    )
    assert field_of(network) == ["name"]
    tag = (await sites_client.get("/v1/networks/caf")).headers["etag"]
    renamed = await sites_client.patch(
        "/v1/networks/caf", json={"name": f"Ca{char}f"}, headers=admin_headers | {"If-Match": tag}
    )
    assert field_of(renamed) == ["name"]

    csv = f"network,external_code,name\ncaf,X1,Caf{char} Lyon\n"
    imported = await post_import(sites_client, csv.encode(), admin_headers)
    assert [(e["line"], e["field"]) for e in imported.json()["errors"]] == [(2, "name")]
    ndjson = f'{{"network": "caf", "external_code": "X1", "name": "Ca{char}f"}}\n'
    imported = await post_import(sites_client, ndjson.encode(), admin_headers, content_type=NDJSON)
    assert [(e["line"], e["field"]) for e in imported.json()["errors"]] == [(1, "name")]
    export = EXPORT_HEADER + f"STR-1;CNAF;CAF;Caf{char} Lyon;\nSTR-2;Réseau{char}X;X;Y;\n"
    imported = await post_import(sites_client, export.encode(), admin_headers)
    assert imported.status_code == 422, imported.text
    # Not single-line text at all: refused as the file's column, like a control character.
    single_line = char in NOT_SINGLE_LINE
    assert sorted((e["line"], e["field"]) for e in imported.json()["errors"]) == [
        (2, "Intitulé de la structure" if single_line else "name"),
        (3, "Intitulé du réseau" if single_line else "network"),
    ]


async def test_plain_french_names_still_pass(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    name = "Caf de l’Hérault – accueil « Montpellier » (34) — Œuvre"
    resp = await sites_client.post("/v1/sites", json=BRON | {"name": name}, headers=admin_headers)
    assert resp.status_code == 201, resp.text
    assert resp.json()["name"] == name


@pytest.mark.parametrize("header", ['"{tag}", *', '*, "{tag}"', "*, *", ' * ,W/"x"'])
async def test_if_match_star_stands_alone(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str], header: str
) -> None:
    site = (await sites_client.post("/v1/sites", json=BRON, headers=admin_headers)).json()
    value = header.format(tag=f"{site['id']}.{site['version']}")
    for method, path, body in [
        ("PATCH", f"/v1/sites/{site['id']}", {"name": "Bron"}),
        ("POST", f"/v1/sites/{site['id']}/close", {}),
        ("PATCH", "/v1/networks/caf", {"website": "https://www.caf.fr"}),
    ]:
        resp = await sites_client.request(
            method, path, json=body, headers=admin_headers | {"If-Match": value}
        )
        assert resp.status_code == 400, (method, path, resp.text)
        assert resp.headers["content-type"] == PROBLEM
        assert "If-Match" in resp.json()["detail"]
    assert (await sites_client.get(f"/v1/sites/{site['id']}")).json()["version"] == 1

    alone = await sites_client.patch(
        f"/v1/sites/{site['id']}", json={"name": "Bron"}, headers=admin_headers | {"If-Match": "*"}
    )
    assert alone.status_code == 200, alone.text

"""SP+ structure codes belong to the programme (ADR 0016).

Only a programme admin sets, changes or clears a site's SP+ code, on create,
PATCH and import; a network key that sends the code a site already has
changes nothing. An import of the programme's export that moves a site to
another network resets what the new owner's row does not give, and says so.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from spp_shared.contracts.permissions import Role
from spp_shared.kit.identity import Principal, PrincipalKind
from tests.sites.test_import import post_import
from tests.sites.test_sites_api import create, etag
from tests.support import assertion_headers

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"
Headers = Callable[[str], dict[str, str]]

# The export's own header and its row for CPAM BOURGES (CNAM network).
EXPORT_HEADER = (
    '"\ufeff""Code SP+ de la structure""";Intitulé du réseau;Intitulé de la typologie;'
    "Intitulé de la structure;Intitulé structure usager;Description de la structure;"
    "Identifiant de la structure;Type d'identifiant;Code SP+ structure parent;"
    "Intitulé de la structure parente;Adresse;Compléments Adresse;Code postal de la structure;"
    "Ville;PAYS;Codes Postaux;Départements;URL du site internet;Boîte à lettre fonctionnelle;"
    "Clé de tracking;Actif;Code sp+ de la typologie;INSEE Ville;INSEE Département;"
    "INSEE Région;INSEE Arrondissement"
)
BOURGES = (
    "sR1Gmf1lAh;CNAM;CPAM;CPAM BOURGES;;Caisse Primaire d'Assurance Maladie CPAM BOURGES;;;"
    ";CNAM;;;18000;BOURGES;France;;18;;;;Oui;49XDHPawXE;com18033;dep18;reg24;arr18033"
)
EXPORT = f"{EXPORT_HEADER}\n{BOURGES}\n".encode()
CAF_BOURGES = {
    "network": "caf",
    "external_code": "CAF18-BOURGES",
    "name": "Caf du Cher - Bourges",
    "address": {"commune_code": "18033"},
}


def agent_headers(network: str) -> dict[str, str]:
    return assertion_headers(
        Principal(subject="agent-1", kind=PrincipalKind.agent, roles=[Role.agent], network=network)
    )


def refused_fields(resp: httpx.Response) -> list[str]:
    assert resp.headers["content-type"] == PROBLEM, resp.text
    return [e["field"] for e in resp.json()["errors"]]


async def test_a_network_key_cannot_claim_an_sp_code_on_create(
    sites_client: httpx.AsyncClient, manager_headers: Headers, admin_headers: dict[str, str]
) -> None:
    caf = manager_headers("caf")
    squat = await sites_client.post(
        "/v1/sites", json=CAF_BOURGES | {"sp_code": "sR1Gmf1lAh"}, headers=caf
    )
    assert squat.status_code == 403
    assert refused_fields(squat) == ["sp_code"]
    assert (await sites_client.get("/v1/sites/sR1Gmf1lAh")).status_code == 404

    await create(sites_client, caf, CAF_BOURGES | {"sp_code": None})  # no code: fine
    admin = await create(
        sites_client, admin_headers, CAF_BOURGES | {"external_code": "X2", "sp_code": "STR-1"}
    )
    assert admin["sp_code"] == "STR-1"


async def test_a_network_key_cannot_set_change_or_clear_an_sp_code_on_patch(
    sites_client: httpx.AsyncClient, manager_headers: Headers, admin_headers: dict[str, str]
) -> None:
    caf = manager_headers("caf")
    bare = await create(sites_client, caf, CAF_BOURGES)
    coded = await create(
        sites_client, admin_headers, CAF_BOURGES | {"external_code": "X2", "sp_code": "STR-2"}
    )
    cases = [(bare, "sR1Gmf1lAh"), (coded, "STR-3"), (coded, None)]
    for site, code in cases:
        resp = await sites_client.patch(
            f"/v1/sites/{site['id']}",
            json={"sp_code": code, "name": "Caf du Cher"},
            headers=caf | {"If-Match": etag(site)},
        )
        assert resp.status_code == 403, (code, resp.text)
        assert refused_fields(resp) == ["sp_code"]
    assert (await sites_client.get(f"/v1/sites/{coded['id']}")).json()["sp_code"] == "STR-2"

    # Sending the code the site already has changes nothing: not an error.
    same = await sites_client.patch(
        f"/v1/sites/{coded['id']}",
        json={"sp_code": "STR-2", "name": "Caf du Cher"},
        headers=caf | {"If-Match": etag(coded)},
    )
    assert same.status_code == 200, same.text
    assert (same.json()["sp_code"], same.json()["name"]) == ("STR-2", "Caf du Cher")
    agent_same = await sites_client.patch(
        f"/v1/sites/{coded['id']}",
        json={"sp_code": "STR-2", "opening_hours": {"monday": []}},
        headers=agent_headers("caf") | {"If-Match": same.headers["etag"]},
    )
    assert agent_same.status_code == 200, agent_same.text

    admin = await sites_client.patch(
        f"/v1/sites/{bare['id']}",
        json={"sp_code": "sR1Gmf1lAh"},
        headers=admin_headers | {"If-Match": etag(bare)},
    )
    assert admin.status_code == 200, admin.text


async def test_a_network_key_cannot_claim_an_sp_code_by_import(
    sites_client: httpx.AsyncClient, manager_headers: Headers, admin_headers: dict[str, str]
) -> None:
    caf = manager_headers("caf")
    await create(sites_client, admin_headers, CAF_BOURGES | {"sp_code": "STR-2"})
    rows = (
        "network,external_code,name,sp_code\n"
        "caf,CAF18-BOURGES,Caf du Cher - Bourges,STR-2\n"  # the code it has: fine
        "caf,CAF18-VIERZON,Caf du Cher - Vierzon,sR1Gmf1lAh\n"  # a new code: refused
    )
    resp = await post_import(sites_client, rows.encode(), caf)
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert [(e["line"], e["field"]) for e in body["errors"]] == [(3, "sp_code")]
    assert "programme admin" in body["errors"][0]["reason"]
    assert (await sites_client.get("/v1/sites/sR1Gmf1lAh")).status_code == 404

    cleared = await post_import(
        sites_client, b"network,external_code,sp_code\ncaf,CAF18-BOURGES,\n", caf
    )
    assert cleared.status_code == 422, cleared.text
    assert [e["field"] for e in cleared.json()["errors"]] == ["sp_code"]

    kept = await post_import(sites_client, rows.encode(), caf, keep_valid="true")
    assert (kept.json()["unchanged"], kept.json()["rejected"]) == (1, 1)

    export = await post_import(sites_client, EXPORT, manager_headers("cpam"))
    assert export.status_code == 422, export.text
    assert [e["field"] for e in export.json()["errors"]] == ["sp_code"]
    admin = await post_import(sites_client, rows.encode(), admin_headers)
    assert admin.json()["created"] == 1


async def test_an_import_moving_a_site_resets_the_old_owners_fields_and_warns(
    sites_client: httpx.AsyncClient, manager_headers: Headers, admin_headers: dict[str, str]
) -> None:
    # A CAF site holds the code of CPAM BOURGES (given by an admin), and CAF
    # fills in its practical information.
    site = await create(sites_client, admin_headers, CAF_BOURGES | {"sp_code": "sR1Gmf1lAh"})
    filled = await sites_client.patch(
        f"/v1/sites/{site['id']}",
        json={
            "contact": {"phone": "0969325252", "appointment_url": "https://evil.example/rdv"},
            "opening_hours": {"monday": [{"opens": "08:30", "closes": "12:30"}]},
            "coordinates": {"lat": 47.08, "lon": 2.39},
        },
        headers=manager_headers("caf") | {"If-Match": etag(site)},
    )
    assert filled.status_code == 200, filled.text

    resp = await post_import(sites_client, EXPORT, admin_headers)
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert report["updated"] == 1
    moved = (await sites_client.get("/v1/sites/sR1Gmf1lAh")).json()
    assert moved["id"] == site["id"]
    assert (moved["network"], moved["name"]) == ("cpam", "CPAM BOURGES")
    assert moved["contact"] == {
        "phone": None,
        "email": None,
        "website": None,
        "appointment_url": None,
    }
    assert moved["opening_hours"] is None
    assert moved["coordinates"] is None
    assert moved["external_code"] == "sR1Gmf1lAh"
    warnings = [w for w in report["warnings"] if w["field"] == "network"]
    assert len(warnings) == 1, report["warnings"]
    assert warnings[0]["line"] == 2
    for word in (site["id"], "'caf'", "'cpam'"):
        assert word in warnings[0]["reason"]

    again = (await post_import(sites_client, EXPORT, admin_headers)).json()
    assert (again["unchanged"], again["warnings"]) == (1, [])


async def test_children_left_in_the_old_network_are_unlinked_when_their_parent_moves(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    parent = await create(sites_client, admin_headers, CAF_BOURGES | {"sp_code": "sR1Gmf1lAh"})
    child = await create(
        sites_client,
        admin_headers,
        CAF_BOURGES
        | {"external_code": "CAF18-VIERZON", "name": "Caf - Vierzon", "sp_code": "CHILD-1"}
        | {"parent_sp_code": "sR1Gmf1lAh"},
    )
    linked = (await sites_client.get(f"/v1/sites/{child['id']}")).json()
    assert linked["parent_id"] == parent["id"]

    resp = await post_import(sites_client, EXPORT, admin_headers)  # the parent goes to cpam
    assert resp.status_code == 200, resp.text
    left = (await sites_client.get(f"/v1/sites/{child['id']}")).json()
    assert (left["network"], left["parent_id"]) == ("caf", None)


async def test_the_export_by_a_network_key_updates_only_codes_already_held(
    sites_client: httpx.AsyncClient, manager_headers: Headers, admin_headers: dict[str, str]
) -> None:
    other = "sR1Gmf1lAh;CNAM;CPAM;CPAM BOURGES;;;;;;;;;18000;BOURGES;France;;;;;;Non;;;;;"
    first = await post_import(sites_client, EXPORT, admin_headers)
    assert first.json()["created"] == 1
    resp = await post_import(
        sites_client, f"{EXPORT_HEADER}\n{other}\n".encode(), manager_headers("cpam")
    )
    assert resp.status_code == 200, resp.text
    assert (resp.json()["updated"], resp.json()["rejected"]) == (1, 0)
    assert (await sites_client.get("/v1/sites/sR1Gmf1lAh")).json()["status"]["state"] == "closed"

"""The structure tree (ADR 0016): a parent is in the site's own network or is a
node of the programme's own network (the DITP's), and no change makes a cycle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.sites.fixtures import BRON, LYON_8, PARIS_12, PARIS_20
from tests.sites.test_import import post_import
from tests.sites.test_sites_api import create, etag

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"
Headers = Callable[[str], dict[str, str]]
CAF = {"network": "caf", "name": "Caf du Rhône", "address": {"commune_code": "69383"}}
CPAM = {"network": "cpam", "name": "CPAM du Rhône", "address": {"commune_code": "69383"}}


async def patch(
    client: httpx.AsyncClient, site: dict[str, Any], body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    """PATCH ``site`` with ``body``, against the version it was read at."""
    return await client.patch(
        f"/v1/sites/{site['id']}", json=body, headers=headers | {"If-Match": etag(site)}
    )


def refused_field(resp: httpx.Response, status: int = 422) -> str:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    errors = resp.json()["errors"]
    assert len(errors) == 1, errors
    return str(errors[0]["field"])


async def test_a_parent_is_in_the_same_network_or_the_programmes(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str], manager_headers: Headers
) -> None:
    caf = manager_headers("caf")
    created = await sites_client.post(
        "/v1/networks", json={"code": "ditp", "name": "DITP"}, headers=admin_headers
    )
    assert created.status_code == 201, created.text
    await create(sites_client, admin_headers, CPAM | {"external_code": "C1", "sp_code": "CPAM1"})
    await create(sites_client, admin_headers, CAF | {"external_code": "F1", "sp_code": "CAF1"})
    programme = await create(
        sites_client,
        admin_headers,
        {"network": "ditp", "external_code": "D", "name": "DITP", "level": "national"}
        | {"sp_code": "DITP1"},
    )

    under_cpam = await sites_client.post(
        "/v1/sites", json=CAF | {"external_code": "F2", "parent_sp_code": "CPAM1"}, headers=caf
    )
    assert refused_field(under_cpam) == "parent_sp_code"
    assert "cpam" in under_cpam.json()["errors"][0]["reason"]

    child = await create(sites_client, caf, CAF | {"external_code": "F2", "parent_sp_code": "CAF1"})
    assert child["parent_id"] is not None
    moved = await patch(sites_client, child, {"parent_sp_code": "CPAM1"}, caf)
    assert refused_field(moved) == "parent_sp_code"
    by_admin = await patch(sites_client, child, {"parent_sp_code": "CPAM1"}, admin_headers)
    assert refused_field(by_admin) == "parent_sp_code"  # a rule of the tree, not of the caller

    top = await patch(sites_client, child, {"parent_sp_code": "DITP1"}, caf)
    assert top.status_code == 200, top.text
    assert top.json()["parent_id"] == programme["id"]


async def test_a_child_waiting_for_its_parent_is_never_linked_across_networks(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str], manager_headers: Headers
) -> None:
    child = await create(
        sites_client, manager_headers("caf"), CAF | {"external_code": "F2", "parent_sp_code": "X1"}
    )
    assert child["parent_id"] is None  # not known yet
    await create(sites_client, admin_headers, CPAM | {"external_code": "C1", "sp_code": "X1"})
    assert (await sites_client.get(f"/v1/sites/{child['id']}")).json()["parent_id"] is None

    # A parent that moves to another network lets go of its children.
    parent = await create(
        sites_client, admin_headers, CAF | {"external_code": "F1", "sp_code": "P1"}
    )
    kid = await create(
        sites_client, admin_headers, CAF | {"external_code": "F3", "parent_sp_code": "P1"}
    )
    assert kid["parent_id"] == parent["id"]
    resp = await patch(sites_client, parent, {"network": "cpam"}, admin_headers)
    assert resp.status_code == 200, resp.text
    assert (await sites_client.get(f"/v1/sites/{kid['id']}")).json()["parent_id"] is None


async def test_no_change_makes_a_cycle(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    a = await create(sites_client, admin_headers, BRON | {"sp_code": "A1"})
    b = await create(
        sites_client, admin_headers, LYON_8 | {"sp_code": "B1", "parent_sp_code": "A1"}
    )
    c = await create(
        sites_client, admin_headers, PARIS_12 | {"sp_code": "C1", "parent_sp_code": "B1"}
    )

    itself = await patch(sites_client, a, {"parent_sp_code": "A1"}, admin_headers)
    assert refused_field(itself) == "parent_sp_code"
    assert "cycle" in itself.json()["errors"][0]["reason"]
    loop = await patch(sites_client, a, {"parent_sp_code": "C1"}, admin_headers)
    assert refused_field(loop) == "parent_sp_code"
    assert (await sites_client.get(f"/v1/sites/{a['id']}")).json()["parent_sp_code"] is None

    # C's children wait for "Z1": C taking that code would close the loop A <- B <- C <- A.
    await patch(sites_client, a, {"parent_sp_code": "Z1"}, admin_headers)
    recode = await patch(sites_client, c, {"sp_code": "Z1"}, admin_headers)
    assert refused_field(recode) == "sp_code"
    assert "cycle" in recode.json()["errors"][0]["reason"]
    self_create = await sites_client.post(
        "/v1/sites",
        json=PARIS_20 | {"sp_code": "S1", "parent_sp_code": "S1"},
        headers=admin_headers,
    )
    assert refused_field(self_create) == "parent_sp_code"
    assert b["parent_id"] == a["id"]


async def test_import_refuses_foreign_parents_and_cycles_and_links_valid_trees(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str], sites_app: FastAPI
) -> None:
    await create(sites_client, admin_headers, CPAM | {"external_code": "C1", "sp_code": "CPAM1"})
    header = "network,external_code,name,sp_code,parent_sp_code\n"
    foreign = header + "caf,F1,Caf,CAF1,CPAM1\n"
    resp = await post_import(sites_client, foreign.encode(), admin_headers)
    assert resp.status_code == 422, resp.text
    assert [(e["line"], e["field"]) for e in resp.json()["errors"]] == [(2, "parent_sp_code")]

    cycle = header + "caf,F1,Caf 1,K1,K2\ncaf,F2,Caf 2,K2,K3\ncaf,F3,Caf 3,K3,K1\n"
    resp = await post_import(sites_client, cycle.encode(), admin_headers)
    assert resp.status_code == 422, resp.text
    assert [(e["line"], e["field"]) for e in resp.json()["errors"]] == [(4, "parent_sp_code")]
    assert "cycle" in resp.json()["errors"][0]["reason"]
    itself = await post_import(
        sites_client, (header + "caf,F1,Caf 1,K1,K1\n").encode(), admin_headers
    )
    assert itself.status_code == 422, itself.text
    # Across batches too: the loop closes on a site written by an earlier batch.
    sites_app.state.settings.import_batch_size = 1
    resp = await post_import(sites_client, cycle.encode(), admin_headers, keep_valid="true")
    assert resp.status_code == 200, resp.text
    assert (resp.json()["created"], resp.json()["rejected"]) == (2, 1)
    assert resp.json()["rejected_rows"][0]["field"] == "parent_sp_code"
    resp = await post_import(
        sites_client, (header + "caf,F3,Caf 3,K3,K1\n").encode(), admin_headers
    )
    assert resp.status_code == 422, resp.text

    # A valid tree, children first, in batches of one row: every link is made.
    tree = header + "caf,T3,Caf 3,T3,T2\ncaf,T2,Caf 2,T2,T1\ncaf,T1,Caf 1,T1,\n"
    resp = await post_import(sites_client, tree.encode(), admin_headers)
    assert resp.status_code == 200, resp.text
    sites = {c: (await sites_client.get(f"/v1/sites/{c}")).json() for c in ("T1", "T2", "T3")}
    assert sites["T3"]["parent_id"] == sites["T2"]["id"]
    assert sites["T2"]["parent_id"] == sites["T1"]["id"]

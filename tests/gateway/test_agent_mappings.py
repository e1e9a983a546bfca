"""Agents' role mappings: precedence, caching, and their admin API."""

from __future__ import annotations

from typing import Any

import pytest

from spp_gateway.store.agents import AgentDirectory, candidates
from spp_shared.contracts.permissions import Role
from spp_shared.kit.identity import PrincipalKind

from .conftest import Admin, as_principal

pytestmark = pytest.mark.anyio

ADMIN = as_principal("admin")
SIRET = "21690123100011"  # a valid check digit
IDENTITY: dict[str, Any] = {
    "subject": "sub-0001",
    "email": "Marie.Curie@CAF.fr",
    "email_domain": "caf.fr",
    "siret": SIRET,
    "uid": "uid-1",
}


async def create_mapping(admin: Admin, **body: Any) -> dict[str, Any]:
    resp = await admin.client.post("/v1/agent-mappings", json=body, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


def test_candidates_most_specific_first() -> None:
    assert candidates(
        subject="s", email="A.B@Caf.FR", email_domain=None, siret="216 901 231 00011"
    ) == [
        ("subject", "s"),
        ("email", "a.b@caf.fr"),
        ("siret", SIRET),
        ("email_domain", "caf.fr"),  # taken from the address when not given
    ]
    # Malformed claims match nothing rather than failing the sign-in.
    assert candidates(subject="s", email="nope", email_domain="", siret="123") == [("subject", "s")]


async def test_precedence_subject_email_siret_domain(admin: Admin) -> None:
    directory: AgentDirectory = admin.agents
    made = {
        "email_domain": await create_mapping(
            admin, match="email_domain", value="CAF.fr", roles=["agent"], network="caf"
        ),
        "siret": await create_mapping(
            admin, match="siret", value=SIRET, roles=["agent"], sites=["3Tn8gzTdcz"]
        ),
        "email": await create_mapping(
            admin, match="email", value="marie.curie@caf.fr", roles=["moderator"]
        ),
        "subject": await create_mapping(
            admin, match="subject", value="sub-0001", roles=["network_manager"], network="cpam"
        ),
    }
    principal = await directory.principal_for(**IDENTITY)
    assert principal.subject == "agent:sub-0001"
    assert principal.kind is PrincipalKind.agent
    assert principal.roles == [Role.network_manager]
    assert principal.network == "cpam"

    expected = [
        ("subject", [Role.moderator], None, []),
        ("email", [Role.agent], None, ["3Tn8gzTdcz"]),
        ("siret", [Role.agent], "caf", []),
    ]
    for removed, roles, network, sites in expected:
        resp = await admin.client.delete(f"/v1/agent-mappings/{made[removed]['id']}", headers=ADMIN)
        assert resp.status_code == 204
        # This process forgot its cache when the change committed.
        principal = await directory.principal_for(**IDENTITY)
        assert (principal.roles, principal.network, principal.sites) == (roles, network, sites)

    await admin.client.delete(f"/v1/agent-mappings/{made['email_domain']['id']}", headers=ADMIN)
    nobody = await directory.principal_for(**IDENTITY)
    assert nobody.subject == "agent:sub-0001"
    assert nobody.roles == []
    assert nobody.network is None


async def test_no_mapping_grants_nothing(admin: Admin) -> None:
    await create_mapping(
        admin, match="email_domain", value="caf.fr", roles=["agent"], network="caf"
    )
    principal = await admin.agents.principal_for(
        subject="x", email="someone@cpam.fr", email_domain="cpam.fr", siret=None, uid=None
    )
    assert principal.roles == []
    assert principal.kind is PrincipalKind.agent
    domain_only = await admin.agents.principal_for(
        subject="y", email=None, email_domain="CAF.FR", siret=None, uid=None
    )
    assert domain_only.roles == [Role.agent]


async def test_other_processes_see_changes_within_their_cache_time(admin: Admin) -> None:
    now = [0.0]
    elsewhere = AgentDirectory(admin.db, cache_seconds=5.0, clock=lambda: now[0])
    assert (await elsewhere.principal_for(**IDENTITY)).roles == []
    await create_mapping(admin, match="subject", value="sub-0001", roles=["moderator"])
    assert (await elsewhere.principal_for(**IDENTITY)).roles == []
    now[0] += 5
    assert (await elsewhere.principal_for(**IDENTITY)).roles == [Role.moderator]
    assert elsewhere.cached == 1


async def test_crud_with_etags(admin: Admin) -> None:
    resp = await admin.client.post(
        "/v1/agent-mappings",
        json={"match": "email", "value": " Marie.Curie@CAF.fr ", "roles": ["moderator"]},
        headers=ADMIN,
    )
    assert resp.status_code == 201, resp.text
    created = resp.json()
    mapping_id = created["id"]
    assert created["value"] == "marie.curie@caf.fr"
    assert created["version"] == 1
    assert created["created_by"] == "bootstrap-admin"
    assert resp.headers["location"] == f"/v1/agent-mappings/{mapping_id}"
    etag = resp.headers["etag"]
    assert etag == f'"{mapping_id}.1"'

    duplicate = await admin.client.post(
        "/v1/agent-mappings",
        json={"match": "email", "value": "marie.curie@caf.fr", "roles": ["agent"], "network": "x1"},
        headers=ADMIN,
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["existing_id"] == mapping_id

    got = await admin.client.get(f"/v1/agent-mappings/{mapping_id}", headers=ADMIN)
    assert got.status_code == 200
    assert got.headers["etag"] == etag
    same = await admin.client.get(
        f"/v1/agent-mappings/{mapping_id}", headers=ADMIN | {"If-None-Match": etag}
    )
    assert same.status_code == 304

    url = f"/v1/agent-mappings/{mapping_id}"
    change = {"roles": ["network_manager"], "network": "caf"}
    missing = await admin.client.patch(url, json=change, headers=ADMIN)
    assert missing.status_code == 428
    stale = await admin.client.patch(url, json=change, headers=ADMIN | {"If-Match": '"x.1"'})
    assert stale.status_code == 412
    patched = await admin.client.patch(url, json=change, headers=ADMIN | {"If-Match": etag})
    assert patched.status_code == 200, patched.text
    assert patched.json()["version"] == 2
    assert patched.json()["roles"] == ["network_manager"]
    new_etag = patched.headers["etag"]
    assert new_etag == f'"{mapping_id}.2"'
    # Nothing to change: no new version.
    noop = await admin.client.patch(url, json=change, headers=ADMIN | {"If-Match": new_etag})
    assert noop.json()["version"] == 2

    stale_delete = await admin.client.delete(url, headers=ADMIN | {"If-Match": etag})
    assert stale_delete.status_code == 412
    deleted = await admin.client.delete(url, headers=ADMIN | {"If-Match": new_etag})
    assert deleted.status_code == 204
    for method in ("GET", "PATCH", "DELETE"):
        gone = await admin.client.request(
            method,
            url,
            json=change if method == "PATCH" else None,
            headers=ADMIN | {"If-Match": "*"},
        )
        assert gone.status_code == 404
        assert gone.json()["type"].endswith("/agent-mapping-not-found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"match": "email_domain", "value": "caf.fr", "roles": ["network_manager"]}, "network"),
        ({"match": "email_domain", "value": "caf.fr", "roles": ["agent"]}, "network"),
        ({"match": "subject", "value": "s", "roles": ["service"]}, "roles"),
        ({"match": "subject", "value": "s", "roles": ["moderator"], "sites": ["X1"]}, "sites"),
        ({"match": "siret", "value": "12345678901234", "roles": ["moderator"]}, "value"),
        ({"match": "email", "value": "not an address", "roles": ["moderator"]}, "value"),
        ({"match": "email_domain", "value": "localhost", "roles": ["moderator"]}, "value"),
        ({"match": "uid", "value": "u", "roles": ["moderator"]}, "match"),
        ({"match": "subject", "value": "s", "roles": []}, "roles"),
    ],
)
async def test_invalid_mappings_are_422_naming_the_field(
    admin: Admin, body: dict[str, Any], field: str
) -> None:
    resp = await admin.client.post("/v1/agent-mappings", json=body, headers=ADMIN)
    assert resp.status_code == 422, resp.text
    assert field in [e["field"] for e in resp.json()["errors"]]


async def test_patch_keeps_the_rules(admin: Admin) -> None:
    created = await create_mapping(
        admin, match="subject", value="s", roles=["network_manager"], network="caf"
    )
    url = f"/v1/agent-mappings/{created['id']}"
    headers = ADMIN | {"If-Match": "*"}
    for body, field in [
        ({"network": None}, "network"),
        ({"roles": None}, "roles"),
        ({"match": "email"}, "match"),
        ({"sites": ["X1"]}, "sites"),
    ]:
        resp = await admin.client.patch(url, json=body, headers=headers)
        assert resp.status_code == 422, body
        assert field in [e["field"] for e in resp.json()["errors"]]
    ok = await admin.client.patch(
        url, json={"roles": ["moderator"], "network": None}, headers=headers
    )
    assert ok.status_code == 200
    assert ok.json()["network"] is None


async def test_list_filters_and_pages(admin: Admin) -> None:
    for i in range(5):
        await create_mapping(
            admin, match="subject", value=f"s{i}", roles=["agent"], network="caf" if i else "cpam"
        )
    await create_mapping(admin, match="email_domain", value="caf.fr", roles=["moderator"])
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = (await admin.client.get("/v1/agent-mappings", params=params, headers=ADMIN)).json()
        seen += [m["value"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["s0", "s1", "s2", "s3", "s4", "caf.fr"]  # oldest first

    async def values(**params: Any) -> list[str]:
        resp = await admin.client.get("/v1/agent-mappings", params=params, headers=ADMIN)
        return [m["value"] for m in resp.json()["items"]]

    assert await values(match="email_domain") == ["caf.fr"]
    assert await values(network="cpam") == ["s0"]

"""Attacks on the service identity, against the real sites service.

The attacker holds what a compromised service holds (the feedback service's
own private key and every public key), or has captured an assertion on the
internal network. Each attack is first shown to work when the gateway's
key signs, so a refusal below is the key's or the binding's doing, not a
request that fails anyway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from spp_shared.contracts.permissions import Role
from spp_shared.kit.identity import (
    ASSERTION_HEADER,
    GATEWAY_ISSUER,
    AssertionSigner,
    Principal,
    PrincipalKind,
    service_principal,
)
from spp_shared.kit.keys import signing_key_env
from tests.sites.fixtures import BRON, VICO
from tests.support import GATEWAY_SIGNER, TEST_KEYS_ENV, assertion_headers, serve_asgi

pytestmark = pytest.mark.anyio

FEEDBACK_KEY = TEST_KEYS_ENV[signing_key_env("feedback")]
ADMIN = Principal(
    subject="bootstrap-admin", kind=PrincipalKind.bootstrap, roles=[Role.programme_admin]
)


@pytest.fixture
async def sites(sites_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # Bare: each request carries exactly the assertion the test gives it.
    async with serve_asgi(sites_app, as_gateway=False) as client:
        yield client


async def _site(sites: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    resp = await sites.post("/v1/sites", json=body, headers=assertion_headers(ADMIN))
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


# The three identities a compromised service would most like to borrow, each
# with a request only that identity may make.
AGENT = "agent"
MANAGER = "network manager"
ADMINISTRATOR = "programme admin"


async def _attempt(
    sites: httpx.AsyncClient, who: str, site: dict[str, Any], signer: AssertionSigner
) -> httpx.Response:
    if who == ADMINISTRATOR:
        return await sites.post(
            "/v1/networks",
            # A kid is base64url: '_' and '-' break the code rule (a flaky 422).
            json={"code": f"rogue-{signer.kid.encode().hex()[:8]}", "name": "Rogue"},
            headers=assertion_headers(ADMIN, signer),
        )
    if who == MANAGER:
        manager = Principal(
            subject="api_key:caf0000000001",
            kind=PrincipalKind.api_key,
            roles=[Role.network_manager],
            network="france-services",
        )
        body = VICO | {"external_code": f"rogue-{signer.kid.encode().hex()[:8]}"}
        return await sites.post("/v1/sites", json=body, headers=assertion_headers(manager, signer))
    agent = Principal(
        subject="agent:bron",
        kind=PrincipalKind.agent,
        roles=[Role.agent],
        network="france-services",
        sites=[site["id"]],
    )
    path = f"/v1/sites/{site['id']}"
    tag = (await sites.get(path, headers=assertion_headers(ADMIN))).headers["etag"]
    hours = {"opening_hours": {"monday": [{"opens": "06:00", "closes": "07:00"}]}}
    return await sites.patch(
        path, json=hours, headers=assertion_headers(agent, signer) | {"if-match": tag}
    )


@pytest.mark.parametrize("who", [AGENT, MANAGER, ADMINISTRATOR])
async def test_a_service_key_cannot_pose_as_an_agent_a_manager_or_an_admin(
    sites: httpx.AsyncClient, who: str
) -> None:
    site = await _site(sites, BRON)
    # Whatever issuer the forger writes, the key it signs with decides.
    for issuer in ("spp-feedback", GATEWAY_ISSUER, "spp-sites"):
        forger = AssertionSigner(issuer, FEEDBACK_KEY, setting="the feedback service's key")
        refused = await _attempt(sites, who, site, forger)
        assert refused.status_code == 401, (issuer, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"].endswith("/invalid-assertion")
    # Nothing was changed by the attempts...
    networks = await sites.get("/v1/networks", headers=assertion_headers(ADMIN))
    assert not [n for n in networks.json()["items"] if n["code"].startswith("rogue")]
    bron = await sites.get(f"/v1/sites/{site['id']}", headers=assertion_headers(ADMIN))
    assert bron.json()["version"] == site["version"]
    # ...and the same request signed by the gateway does what it asks.
    done = await _attempt(sites, who, site, GATEWAY_SIGNER)
    assert done.status_code in (200, 201), done.text


async def test_a_service_key_acts_as_that_service_with_the_service_role(
    sites: httpx.AsyncClient,
) -> None:
    site = await _site(sites, BRON)
    feedback = AssertionSigner("spp-feedback", FEEDBACK_KEY, setting="feedback")
    own = service_principal("feedback")
    # The matrix grants the service role the bulk look-up...
    found = await sites.post(
        "/v1/sites/lookup", json={"ids": [site["id"]]}, headers=assertion_headers(own, feedback)
    )
    assert found.status_code == 200, found.text
    assert [s["id"] for s in found.json()["found"]] == [site["id"]]
    # ...and not the creation of a site: refused as the service it is (403), not as a forgery.
    create = await sites.post("/v1/sites", json=VICO, headers=assertion_headers(own, feedback))
    assert create.status_code == 403, create.text


async def test_a_captured_assertion_replays_for_nothing_else(sites: httpx.AsyncClient) -> None:
    site = await _site(sites, BRON)
    path = f"/v1/sites/{site['id']}"
    # An admin's read, as the gateway signed it, captured on the internal network.
    captured = GATEWAY_SIGNER.sign(ADMIN, method="GET", path=path, request_id="rid-read")
    stolen = {ASSERTION_HEADER: captured}
    read = await sites.get(path, headers=stolen | {"x-request-id": "rid-read"})
    assert read.status_code == 200
    tag = read.headers["etag"]

    replays = [
        sites.request("DELETE", path, headers=stolen | {"if-match": tag}),
        sites.patch(path, json={"name": "Pwned"}, headers=stolen | {"if-match": tag}),
        sites.post("/v1/sites", json=VICO, headers=stolen),
        sites.post("/v1/networks", json={"code": "rogue", "name": "R"}, headers=stolen),
        sites.get("/v1/sites", headers=stolen),
        sites.head(path, headers=stolen),
        # the same request, under another request id
        sites.get(path, headers=stolen | {"x-request-id": "rid-other"}),
    ]
    for replay in replays:
        resp = await replay
        assert resp.status_code == 401, (resp.request.method, resp.request.url, resp.text)
        if resp.request.method != "HEAD":
            assert resp.json()["type"].endswith("/invalid-assertion")
    unchanged = await sites.get(path, headers=assertion_headers(ADMIN))
    assert unchanged.json()["name"] == site["name"]

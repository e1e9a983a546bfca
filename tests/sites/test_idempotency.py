"""Idempotency-Key on creating POSTs (Stripe's semantics)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from spp_shared.contracts.permissions import Role
from spp_shared.kit.identity import Principal, PrincipalKind
from tests.sites.fixtures import BRON, VICO
from tests.support import assertion_headers

pytestmark = pytest.mark.anyio


async def count_sites(client: httpx.AsyncClient) -> int:
    return len((await client.get("/v1/sites", params={"limit": 500})).json()["items"])


async def test_retry_with_the_same_key_replays_the_first_answer(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    headers = admin_headers | {"Idempotency-Key": "3f1c0c9e-create-bron"}
    first = await sites_client.post("/v1/sites", json=BRON, headers=headers)
    assert first.status_code == 201, first.text
    second = await sites_client.post("/v1/sites", json=BRON, headers=headers)
    assert second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["location"] == first.headers["location"]
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await count_sites(sites_client) == 1


async def test_same_key_with_another_request_is_refused(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    headers = admin_headers | {"Idempotency-Key": "k-1"}
    assert (await sites_client.post("/v1/sites", json=BRON, headers=headers)).status_code == 201
    other = await sites_client.post("/v1/sites", json=VICO, headers=headers)
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert await count_sites(sites_client) == 1


async def test_keys_belong_to_their_caller(
    sites_client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    manager_headers: Callable[[str], dict[str, str]],
) -> None:
    admin = await sites_client.post(
        "/v1/sites", json=BRON, headers=admin_headers | {"Idempotency-Key": "same"}
    )
    manager = await sites_client.post(
        "/v1/sites",
        json=VICO,
        headers=manager_headers("france-services") | {"Idempotency-Key": "same"},
    )
    assert (admin.status_code, manager.status_code) == (201, 201)
    assert admin.json()["id"] != manager.json()["id"]


async def test_a_failed_request_leaves_no_key_behind(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    headers = admin_headers | {"Idempotency-Key": "retry-after-fix"}
    bad = await sites_client.post("/v1/sites", json=BRON | {"network": "nope"}, headers=headers)
    assert bad.status_code == 422
    # Same key, corrected request: the failure was not stored, so this is new work.
    good = await sites_client.post("/v1/sites", json=BRON, headers=headers)
    assert good.status_code == 201, good.text


async def test_networks_accept_keys_and_bad_keys_are_refused(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = {"code": "onacvg", "name": "ONACVG"}
    headers = admin_headers | {"Idempotency-Key": "net-1"}
    first = await sites_client.post("/v1/networks", json=body, headers=headers)
    again = await sites_client.post("/v1/networks", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["idempotent-replayed"] == "true"
    long_key = await sites_client.post(
        "/v1/networks", json=body, headers=admin_headers | {"Idempotency-Key": "x" * 300}
    )
    assert long_key.status_code == 400
    assert long_key.json()["type"].endswith("/invalid-idempotency-key")


async def test_a_caller_with_a_long_subject_can_use_keys(sites_client: httpx.AsyncClient) -> None:
    # An OIDC subject may take 255 characters: longer than the stored column.
    long = Principal(
        subject="agent:" + "s" * 250,
        kind=PrincipalKind.agent,
        roles=[Role.network_manager],
        network="france-services",
    )
    headers = assertion_headers(long) | {"Idempotency-Key": "long-subject"}
    first = await sites_client.post("/v1/sites", json=BRON, headers=headers)
    assert first.status_code == 201, first.text
    again = await sites_client.post("/v1/sites", json=BRON, headers=headers)
    assert again.headers["idempotent-replayed"] == "true"

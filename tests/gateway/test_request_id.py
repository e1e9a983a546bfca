"""A caller's X-Request-ID is taken only as a plain token (echoed, logged, audited)."""

from __future__ import annotations

import httpx
import pytest

from spp_shared.kit.logging import clean_request_id

from .conftest import Admin, ServedApp, as_principal

pytestmark = pytest.mark.anyio

REFUSED = [
    "<script>alert(1)</script>",
    "a" * 65,
    "id.with.dots",
    "urn:uuid:1",
    "quote'd",
    "caf\u00e9",
]
KEPT = ["a", "a" * 64, "Tour-import_0f3A-9"]


@pytest.mark.parametrize("value", REFUSED)
def test_anything_but_a_plain_token_is_replaced(value: str) -> None:
    made = clean_request_id(value.encode("utf-8"))
    assert made != value
    assert len(made) == 32
    assert made.isalnum()


@pytest.mark.parametrize("value", KEPT)
def test_plain_tokens_are_kept(value: str) -> None:
    assert clean_request_id(value.encode()) == value


def test_missing_or_empty_makes_one() -> None:
    assert len(clean_request_id(None)) == 32
    assert len(clean_request_id(b"")) == 32


async def test_gateway_neither_echoes_nor_forwards_markup(gateway: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        resp = await client.get("/v1/sites/1/x", headers={"x-request-id": REFUSED[0]})
    rid = resp.headers["x-request-id"]
    assert rid != REFUSED[0]
    assert len(rid) == 32
    seen = [v for n, v in resp.json()["headers"] if n == "x-request-id"]
    assert seen == [rid]


async def test_audit_log_stores_the_replacement(admin: Admin) -> None:
    resp = await admin.client.post(
        "/v1/api-keys",
        json={"name": "k", "owner": "o", "roles": ["moderator"]},
        headers=as_principal("admin") | {"X-Request-ID": REFUSED[0]},
    )
    assert resp.status_code == 201, resp.text
    events = await admin.client.get(
        "/v1/audit-events", params={"action": "api_key.created"}, headers=as_principal("admin")
    )
    [event] = [e for e in events.json()["items"] if e["target"] == resp.json()["id"]]
    assert event["request_id"] == resp.headers["x-request-id"] != REFUSED[0]

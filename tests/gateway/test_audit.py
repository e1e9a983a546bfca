"""The audit log: one event per privileged change, never a secret, and proxied writes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from spp_gateway.store.audit import record_request, scrub
from spp_shared.kit.db import Database

from .conftest import PRINCIPALS, Admin, as_principal

pytestmark = pytest.mark.anyio

ADMIN = as_principal("admin")


def rid(value: str) -> dict[str, str]:
    return ADMIN | {"X-Request-ID": value}


async def events(admin: Admin, **params: Any) -> list[dict[str, Any]]:
    resp = await admin.client.get("/v1/audit-events", params=params, headers=ADMIN)
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


async def every_stored_value(db: Database) -> str:
    """The whole gateway database as text, to search for what must not be there."""
    parts: list[str] = []
    async with db.read_sessionmaker() as session:
        for table in ("audit_events", "api_keys", "agent_mappings"):
            rows = (await session.execute(text(f"SELECT * FROM {table}"))).all()
            parts += [f"{table}: {tuple(row)}" for row in rows]
    return "\n".join(parts)


async def test_every_privileged_action_is_recorded_with_its_request_id(admin: Admin) -> None:
    client = admin.client
    created = (
        await client.post(
            "/v1/api-keys",
            json={"name": "k", "owner": "o", "roles": ["moderator"]},
            headers=rid("r-create"),
        )
    ).json()
    key_id = created["id"]
    rotated = (await client.post(f"/v1/api-keys/{key_id}/rotate", headers=rid("r-rotate"))).json()
    await client.delete(f"/v1/api-keys/{key_id}", headers=rid("r-revoke"))
    await client.delete(f"/v1/api-keys/{key_id}", headers=rid("r-revoke-again"))  # no change
    mapping = (
        await client.post(
            "/v1/agent-mappings",
            json={"match": "email", "value": "agent.x@caf.fr", "roles": ["moderator"]},
            headers=rid("r-map"),
        )
    ).json()
    url = f"/v1/agent-mappings/{mapping['id']}"
    await client.patch(
        url, json={"roles": ["certifier"]}, headers=rid("r-patch") | {"If-Match": "*"}
    )
    await client.delete(url, headers=rid("r-delete"))

    found = await events(admin)
    summary = [(e["action"], e["target"], e["status"], e["request_id"]) for e in found]
    assert summary == [  # newest first
        ("agent_mapping.deleted", mapping["id"], 204, "r-delete"),
        ("agent_mapping.updated", mapping["id"], 200, "r-patch"),
        ("agent_mapping.created", mapping["id"], 201, "r-map"),
        ("api_key.revoked", key_id, 200, "r-revoke"),
        ("api_key.rotated", key_id, 200, "r-rotate"),
        ("api_key.created", key_id, 201, "r-create"),
    ]
    assert {(e["actor"], e["actor_kind"]) for e in found} == {("bootstrap-admin", "bootstrap")}
    created_event = found[-1]
    assert created_event["details"]["roles"] == ["moderator"]
    assert found[1]["details"]["changes"] == {"roles": ["certifier"]}
    # An agent's address is personal data: its events keep the domain only.
    assert found[2]["details"]["value_domain"] == "caf.fr"

    stored = await every_stored_value(admin.db)
    for secret in (created["secret"], rotated["secret"]):
        assert secret[17:] not in stored
        digest = hashlib.sha256(secret.encode()).hexdigest()
        audit_only = stored.split("api_keys:")[0]
        assert digest not in audit_only
    assert "agent.x@caf.fr" not in stored  # the mapping itself is gone
    assert "secret" not in stored


async def test_refused_requests_change_nothing_and_record_nothing(admin: Admin) -> None:
    resp = await admin.client.post(
        "/v1/api-keys",
        json={"name": "k", "owner": "o", "roles": ["moderator"]},
        headers=as_principal("manager"),
    )
    assert resp.status_code == 403
    invalid = await admin.client.post(
        "/v1/api-keys", json={"name": "k", "owner": "o", "roles": ["agent"]}, headers=ADMIN
    )
    assert invalid.status_code == 422
    assert await events(admin) == []


async def test_filters_and_pages(admin: Admin) -> None:
    for i in range(5):
        await admin.client.post(
            "/v1/api-keys",
            json={"name": f"k{i}", "owner": "o", "roles": ["moderator"]},
            headers=rid(f"r{i}"),
        )
    await record_request(
        admin.db,
        actor=PRINCIPALS["manager"],
        method="POST",
        path="/v1/sites",
        status=201,
        request_id="r-proxied",
    )
    pages: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        resp = await admin.client.get("/v1/audit-events", params=params, headers=ADMIN)
        body = resp.json()
        pages += [e["request_id"] for e in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == ["r-proxied", "r4", "r3", "r2", "r1", "r0"]

    assert [e["request_id"] for e in await events(admin, action="request")] == ["r-proxied"]
    assert len(await events(admin, actor="bootstrap-admin")) == 5
    assert [e["request_id"] for e in await events(admin, actor="api_key:managercaf01")] == [
        "r-proxied"
    ]
    now = datetime.now(UTC)
    assert len(await events(admin, since=(now - timedelta(minutes=1)).isoformat())) == 6
    assert await events(admin, since=(now + timedelta(minutes=1)).isoformat()) == []
    assert await events(admin, until=(now - timedelta(minutes=1)).isoformat()) == []
    naive = await admin.client.get(
        "/v1/audit-events", params={"since": "2026-01-01T00:00:00"}, headers=ADMIN
    )
    assert naive.status_code == 422
    too_many = await admin.client.get("/v1/audit-events", params={"limit": 501}, headers=ADMIN)
    assert too_many.status_code == 422


async def test_record_request_keeps_the_path_not_the_query(admin: Admin) -> None:
    secret = "spp_abcdefghijkl_" + "S" * 43
    recorded = await record_request(
        admin.db,
        actor=PRINCIPALS["agent"],
        method="PATCH",
        path="/v1/sites/caf:X1?token=abc&email=a@b.fr",
        status=200,
        request_id="r1",
        details={"authorization": secret, "note": f"by a.b@caf.fr with {secret}", "n": 1},
    )
    assert recorded
    (event,) = await events(admin)
    assert event["action"] == "request"
    assert event["target"] == "/v1/sites/caf:X1"
    assert event["actor"] == "agent:someone"
    assert event["actor_kind"] == "agent"
    assert event["details"] == {
        "method": "PATCH",
        "note": "by [e-mail] with spp_abcdefghijkl_[redacted]",
        "n": 1,
    }


async def test_record_request_never_raises(tmp_path: Path) -> None:
    # A database without the tables: the write fails, the caller is not told.
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    try:
        recorded = await record_request(
            db,
            actor=PRINCIPALS["admin"],
            method="POST",
            path="/v1/sites",
            status=201,
            request_id="r1",
        )
    finally:
        await db.dispose()
    assert recorded is False


def test_scrub() -> None:
    key = "spp_abcdefghijkl_" + "x" * 43
    assert scrub(
        {
            "secret": "s",
            "secret_hash": "h",
            "Token": "t",
            "user_email": "e",
            "nested": {"password": "p", "list": [key, "ok", 1, None, True]},
            "when": datetime(2026, 1, 1, tzinfo=UTC),
        }
    ) == {
        "nested": {"list": ["spp_abcdefghijkl_[redacted]", "ok", 1, None, True]},
        "when": "2026-01-01 00:00:00+00:00",
    }

"""Failed jobs stay visible: the admin's list and the count in /metrics.

On the sites service's real migrated database and app (every service gets
the same router and gauge from the app factory).
"""

from __future__ import annotations

import httpx
import pytest

from spp_shared.contracts.permissions import Role
from spp_shared.kit.db import Database
from spp_shared.kit.identity import Principal, PrincipalKind
from spp_shared.kit.outbox import enqueue
from spp_shared.kit.worker import Job, Worker
from tests.support import assertion_headers

pytestmark = pytest.mark.anyio

MANAGER = Principal(
    subject="key-caf", kind=PrincipalKind.api_key, roles=[Role.network_manager], network="caf"
)


@pytest.fixture
def db(sites_client: httpx.AsyncClient, sites_database: Database) -> Database:
    """The database the app under test uses (sites_client's)."""
    return sites_database


async def fail_jobs(db: Database, count: int) -> None:
    async def refuse(job: Job) -> None:
        raise ConnectionError(f"smtp.example.fr refused job {job.payload['n']}")

    async with db.sessionmaker() as session, session.begin():
        for n in range(count):
            await enqueue(session, "push", {"n": n, "text": "Mon avis personnel"}, max_attempts=1)
        await enqueue(session, "later", {"n": -1})
    assert await Worker(db, {"push": refuse}).run_until_idle() == count


async def test_failed_jobs_are_listed_for_admins_without_their_payload(
    sites_client: httpx.AsyncClient, db: Database, admin_headers: dict[str, str]
) -> None:
    await fail_jobs(db, 3)
    resp = await sites_client.get("/v1/sites/jobs?state=failed&limit=2", headers=admin_headers)
    assert resp.status_code == 200, resp.text
    page = resp.json()
    assert [j["state"] for j in page["items"]] == ["failed", "failed"]
    first = page["items"][0]
    assert first["kind"] == "push"
    assert first["attempts"] == first["max_attempts"] == 1
    assert first["last_error"] == "ConnectionError: smtp.example.fr refused job 2"
    assert "payload" not in first
    assert "Mon avis" not in resp.text
    rest = await sites_client.get(
        "/v1/sites/jobs",
        params={"state": "failed", "limit": 2, "cursor": page["next_cursor"]},
        headers=admin_headers,
    )
    assert [j["last_error"][-5:] for j in rest.json()["items"]] == ["job 0"]
    assert rest.json()["next_cursor"] is None
    pending = await sites_client.get("/v1/sites/jobs?state=pending", headers=admin_headers)
    assert [j["kind"] for j in pending.json()["items"]] == ["later"]


async def test_only_programme_admins_read_the_jobs(
    sites_client: httpx.AsyncClient, db: Database
) -> None:
    anonymous = await sites_client.get("/v1/sites/jobs")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    manager = await sites_client.get("/v1/sites/jobs", headers=assertion_headers(MANAGER))
    assert manager.status_code == 403
    assert manager.headers["content-type"] == "application/problem+json"


async def test_bad_filters_are_problems(
    sites_client: httpx.AsyncClient, db: Database, admin_headers: dict[str, str]
) -> None:
    for query in ("state=done", "cursor=WyJ4Il0", "cursor=!!", "limit=0", "kind=a%00b"):
        resp = await sites_client.get(f"/v1/sites/jobs?{query}", headers=admin_headers)
        assert resp.status_code in (400, 422), (query, resp.text)
        assert resp.headers["content-type"] == "application/problem+json", query


async def test_metrics_count_jobs_by_kind_and_state(
    sites_client: httpx.AsyncClient, db: Database
) -> None:
    await fail_jobs(db, 2)
    text = (await sites_client.get("/metrics")).text
    assert 'spp_outbox_jobs{kind="push",service="sites",state="failed"} 2.0' in text
    assert 'spp_outbox_jobs{kind="later",service="sites",state="pending"} 1.0' in text
    # A job that leaves the table leaves the figures too.
    async with db.sessionmaker() as session, session.begin():
        await enqueue(session, "noop", {})

    async def noop(job: Job) -> None:
        pass

    assert await Worker(db, {"later": noop, "noop": noop}).run_until_idle() == 2
    text = (await sites_client.get("/metrics")).text
    assert 'state="pending"' not in text
    assert 'spp_outbox_jobs{kind="push",service="sites",state="failed"} 2.0' in text

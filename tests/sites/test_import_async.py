"""Imports run in the background: ``async=true`` answers 202, the worker imports.

The upload is kept in the database (any worker process may take the job),
the outbox job is the kit's, and the status resource answers what a
synchronous import would have: the report, or the problem.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from spp_shared.kit.cli import worker_handlers
from spp_shared.kit.ingest.jobs import UPLOADS
from spp_shared.kit.worker import Worker
from spp_sites.importer.jobs import import_handlers, import_timeouts, run_import_job
from tests.sites.test_import import PROBLEM, ROWS, count_sites, csv_body, post_import

pytestmark = pytest.mark.anyio


async def run_worker(app: FastAPI) -> int:
    """The sites worker, as ``python -m spp_sites worker --once`` runs it."""
    settings = app.state.settings
    worker = Worker(
        app.state.db,
        worker_handlers(settings, import_handlers(settings, app.state.db)),
        timeouts=import_timeouts(settings),
    )
    return await worker.run_until_idle()


async def status_of(client: httpx.AsyncClient, resp: httpx.Response, headers: Any) -> Any:
    got = await client.get(resp.headers["location"], headers=headers)
    assert got.status_code == 200, got.text
    return got.json()


async def stored_blocks(app: FastAPI) -> int:
    async with app.state.db.read_sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(UPLOADS)) or 0)


async def test_async_import_answers_202_then_the_worker_imports(
    sites_client: httpx.AsyncClient, sites_app: FastAPI, admin_headers: dict[str, str]
) -> None:
    resp = await post_import(sites_client, csv_body(ROWS), admin_headers, **{"async": "true"})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert resp.headers["location"] == f"/v1/sites/import/{job['id']}"
    assert (job["state"], job["status"], job["result"]) == ("pending", None, None)
    assert job["size"] == len(csv_body(ROWS))
    assert await count_sites(sites_client) == 0  # nothing imported yet
    assert await stored_blocks(sites_app) == 1

    assert await run_worker(sites_app) == 1
    done = await status_of(sites_client, resp, admin_headers)
    assert (done["state"], done["status"]) == ("done", 200)
    assert done["result"]["format"] == "csv"
    assert (done["result"]["created"], done["result"]["committed"]) == (3, True)
    assert await count_sites(sites_client) == 3
    assert await stored_blocks(sites_app) == 0  # the upload goes once imported

    # The outbox delivers at least once: the same job again changes nothing.
    await run_import_job(sites_app.state.db, sites_app.state.settings, job["id"])
    assert await status_of(sites_client, resp, admin_headers) == done


async def test_prefer_respond_async_and_the_outcomes_a_synchronous_import_has(
    sites_client: httpx.AsyncClient, sites_app: FastAPI, admin_headers: dict[str, str]
) -> None:
    prefer = admin_headers | {"Prefer": "wait=5, respond-async"}
    rejected = await post_import(sites_client, csv_body([*ROWS, "caf,,No code" + "," * 11]), prefer)
    assert rejected.status_code == 202, rejected.text
    latin1 = b"network,external_code,name\ncaf,A1,Caf\xe9\n"
    unreadable = await post_import(sites_client, latin1, prefer)
    dry = await post_import(sites_client, csv_body(ROWS), prefer, dry_run="true")
    assert await run_worker(sites_app) == 3

    problem = await status_of(sites_client, rejected, admin_headers)
    assert problem["status"] == 422
    assert problem["result"]["type"].endswith("/import-rejected")
    assert problem["result"]["errors"] == [
        {"line": 5, "field": "external_code", "reason": "required"}
    ]
    assert problem["result"]["instance"] == rejected.headers["location"]
    not_utf8 = await status_of(sites_client, unreadable, admin_headers)
    assert not_utf8["status"] == 422
    assert not_utf8["result"]["type"].endswith("/invalid-import-file")
    dry_run = await status_of(sites_client, dry, admin_headers)
    assert (dry_run["status"], dry_run["result"]["dry_run"]) == (200, True)
    assert await count_sites(sites_client) == 0
    assert await stored_blocks(sites_app) == 0


async def test_a_background_import_keeps_the_callers_rights_and_is_theirs_to_read(
    sites_client: httpx.AsyncClient,
    sites_app: FastAPI,
    admin_headers: dict[str, str],
    manager_headers: Callable[[str], dict[str, str]],
) -> None:
    caf = manager_headers("caf")
    # A CAF key's import of another network's site: rejected as it would be at once.
    resp = await post_import(sites_client, csv_body(ROWS), caf, **{"async": "true"})
    assert resp.status_code == 202
    assert (await sites_client.get(resp.headers["location"])).status_code == 401
    other = await sites_client.get(resp.headers["location"], headers=manager_headers("cpam"))
    assert other.status_code == 404
    assert other.headers["content-type"] == PROBLEM
    missing = await sites_client.get("/v1/sites/import/01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=caf)
    assert missing.status_code == 404
    await run_worker(sites_app)
    outcome = await status_of(sites_client, resp, caf)
    assert outcome["status"] == 422
    assert {e["reason"] for e in outcome["result"]["errors"]} == {
        "not your network: you may not import sites of 'france-services'"
    }
    assert (await status_of(sites_client, resp, admin_headers))["id"] == outcome["id"]
    too_large = await post_import(
        sites_client, b"x" * 10, caf, **{"async": "true"}, content_type={"content-type": "a/b"}
    )
    assert too_large.status_code == 415  # refused before anything is stored
    assert await stored_blocks(sites_app) == 0

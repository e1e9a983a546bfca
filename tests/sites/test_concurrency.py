"""Concurrent writers: one wins, the others are told why (never a 500, never a
lost update). Runs on SQLite (one writer at a time) and PostgreSQL (row locks)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.sites.fixtures import BRON
from tests.support import PG_URL_ENV

pytestmark = pytest.mark.anyio


async def statuses(*calls: Any) -> Counter[int]:
    responses = await asyncio.gather(*calls)
    return Counter(r.status_code for r in responses)


async def test_concurrent_patches_with_one_etag_let_one_win(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    site = (await sites_client.post("/v1/sites", json=BRON, headers=admin_headers)).json()
    tag = {"If-Match": f'"{site["id"]}.1"'}
    url = f"/v1/sites/{site['id']}"
    got = await statuses(
        *(
            sites_client.patch(url, json={"name": f"winner {k}"}, headers=admin_headers | tag)
            for k in range(6)
        )
    )
    assert got == Counter({200: 1, 412: 5})
    assert (await sites_client.get(url)).json()["version"] == 2


async def test_concurrent_creates_of_one_site(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    got = await statuses(
        *(sites_client.post("/v1/sites", json=BRON, headers=admin_headers) for _ in range(6))
    )
    assert got == Counter({201: 1, 409: 5})


async def test_concurrent_closes_close_once(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    site = (await sites_client.post("/v1/sites", json=BRON, headers=admin_headers)).json()
    got = await statuses(
        *(
            sites_client.post(f"/v1/sites/{site['id']}/close", json={}, headers=admin_headers)
            for _ in range(5)
        )
    )
    assert got == Counter({200: 1, 409: 4})


async def test_concurrent_imports_of_the_same_rows(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    rows = "\n".join(f"caf,RACE-{i},Caf {i}" for i in range(300))
    body = f"network,external_code,name\n{rows}\n".encode()
    headers = admin_headers | {"content-type": "text/csv"}
    got = await statuses(
        *(sites_client.post("/v1/sites/import", content=body, headers=headers) for _ in range(3))
    )
    # The first creates them; the others either see them (unchanged) or lost
    # the race and say so (409): never a 500.
    assert got[200] >= 1
    assert set(got) <= {200, 409}
    listing = await sites_client.get("/v1/sites", params={"network": "caf", "limit": 500})
    assert len(listing.json()["items"]) == 300


async def test_concurrent_retries_with_one_idempotency_key_create_once(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    headers = admin_headers | {"Idempotency-Key": "race-1"}
    got = await statuses(
        *(sites_client.post("/v1/sites", json=BRON, headers=headers) for _ in range(5))
    )
    assert set(got) <= {201, 409}  # replays, or "still in flight"
    assert got[201] >= 1
    listing = await sites_client.get("/v1/sites", params={"network": "france-services"})
    assert len(listing.json()["items"]) == 1


async def test_an_import_never_overwrites_a_site_changed_after_its_look_up(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent's PATCH lands between the import's look-up and its update."""
    from spp_sites.importer import writer

    created = await sites_client.post("/v1/sites", json=BRON, headers=admin_headers)
    site = created.json()
    real_update = writer.update_sites

    async def patch_first(session: Any, rows: Any) -> None:
        # A second client writes in between (its own transaction, committed).
        patched = await sites_client.patch(
            f"/v1/sites/{site['id']}",
            json={"name": "Renamed by an agent"},
            headers=admin_headers | {"If-Match": created.headers["etag"]},
        )
        assert patched.status_code == 200
        await real_update(session, rows)

    if not os.environ.get(PG_URL_ENV):
        pytest.skip("SQLite holds its write lock for the whole import: no window to test")
    monkeypatch.setattr(writer, "update_sites", patch_first)
    body = b"network,external_code,name\nfrance-services,953,Imported name\n"
    resp = await sites_client.post(
        "/v1/sites/import", content=body, headers=admin_headers | {"content-type": "text/csv"}
    )
    assert resp.status_code == 409, resp.text
    assert (await sites_client.get(f"/v1/sites/{site['id']}")).json()["name"] == (
        "Renamed by an agent"
    )

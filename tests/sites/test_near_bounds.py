"""`near` searches are bounded: the radius at a département's scale, the
candidates ranked per request at MAX_NEAR_CANDIDATES (chosen in SQL).

The security review pushed a trivial read to 0.4-0.6 s median with 50
concurrent searches of 200 km, each ranking thousands of sites in Python.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from spp_shared.contracts.types import haversine_km
from spp_shared.kit.db import Database
from spp_sites import repository as repo
from spp_sites.near import MAX_NEAR_CANDIDATES, MAX_NEAR_RADIUS_KM, bbox
from tests.sites.test_import import post_import

pytestmark = pytest.mark.anyio

BELLECOUR = (45.7578, 4.8320)


def csv_of(points: list[tuple[str, float, float]]) -> bytes:
    lines = ["network,external_code,name,latitude,longitude"]
    lines += [f"caf,{code},Caf {code},{lat},{lon}" for code, lat, lon in points]
    return ("\n".join(lines) + "\n").encode()


async def import_points(
    client: httpx.AsyncClient, headers: dict[str, str], points: list[tuple[str, float, float]]
) -> None:
    resp = await post_import(client, csv_of(points), headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["rejected"] == 0, resp.text


async def test_the_radius_is_bounded_at_a_departements_scale(
    sites_client: httpx.AsyncClient,
) -> None:
    # It was: up to 200 km, thousands of sites ranked per request.
    wide = await sites_client.get("/v1/sites", params={"near": "45.75,4.83", "radius_km": 200})
    assert wide.status_code == 422
    assert wide.headers["content-type"] == "application/problem+json"
    assert "radius_km" in wide.text
    widest = await sites_client.get(
        "/v1/sites", params={"near": "45.75,4.83", "radius_km": MAX_NEAR_RADIUS_KM}
    )
    assert widest.status_code == 200, widest.text


async def test_the_schema_says_the_bound(sites_client: httpx.AsyncClient) -> None:
    spec = (await sites_client.get("/openapi.json")).json()
    params = {p["name"]: p for p in spec["paths"]["/v1/sites"]["get"]["parameters"]}
    assert params["radius_km"]["schema"]["maximum"] == MAX_NEAR_RADIUS_KM


async def test_the_database_hands_over_the_nearest_candidates_only(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str], sites_app: FastAPI
) -> None:
    lat, lon = BELLECOUR
    # A ring of sites, each 0.01 degree further east or north than the last.
    points = [
        (f"RING{i:02d}", lat + 0.01 * i * (i % 2), lon + 0.01 * i * (1 - i % 2))
        for i in range(1, 21)
    ]
    await import_points(sites_client, admin_headers, points)
    box = repo.SiteFilters(bbox=bbox(lat, lon, 30))
    db: Database = sites_app.state.db
    async with db.read_sessionmaker() as session:
        everything = await repo.points_in_bbox(session, box)
        nearest = await repo.points_in_bbox(session, box, limit=5)
    assert len(everything) == 20
    by_id = {site_id: (s_lat, s_lon) for site_id, s_lat, s_lon in everything}
    assert len(nearest) == 5

    # The five rows kept are the five nearest (one degree of longitude is
    # shorter than one of latitude here: not simply the first five).
    def km(point: tuple[float, float]) -> float:
        return haversine_km(lat, lon, *point)

    kept = sorted(km(by_id[site_id]) for site_id, _, _ in nearest)
    assert kept == sorted(km(p) for p in by_id.values())[:5]


async def test_paging_stops_at_the_candidate_bound(
    sites_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    lat, lon = BELLECOUR
    # MAX_NEAR_CANDIDATES sites within 2 km, and a few more 20 km away.
    near = [
        (f"N{i:05d}", lat + (i % 50) * 0.0004, lon + (i // 50) * 0.0004)
        for i in range(MAX_NEAR_CANDIDATES)
    ]
    far = [(f"F{i}", lat + 0.18, lon + 0.001 * i) for i in range(5)]
    await import_points(sites_client, admin_headers, near + far)
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"near": f"{lat},{lon}", "radius_km": 30, "limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = (await sites_client.get("/v1/sites", params=params)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == MAX_NEAR_CANDIDATES
    assert {s["external_code"] for s in seen} == {code for code, _, _ in near}
    distances = [s["distance_km"] for s in seen]
    assert distances == sorted(distances)

"""Public readiness costs the upstreams one round of checks a second, however
many callers ask."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from tests.support import ServiceDB

from .conftest import ServedApp, gateway_settings, serve_gateway

pytestmark = pytest.mark.anyio


async def test_a_flood_of_readiness_calls_probes_each_upstream_once(
    upstreams: dict[str, ServedApp], gateway_db: ServiceDB
) -> None:
    probes: list[int] = []
    counting = FastAPI()

    @counting.get("/readyz")
    async def readyz() -> dict[str, str]:
        probes.append(1)
        await asyncio.sleep(0.05)  # a real check takes a moment: callers pile up
        return {"status": "ok"}

    sites = ServedApp(counting).start()
    urls = {n: u.url for n, u in upstreams.items()} | {"sites": sites.url}
    served = serve_gateway(gateway_settings(urls, database_url=gateway_db.url))
    try:
        async with httpx.AsyncClient(base_url=served.url) as client:
            answers = await asyncio.gather(*(client.get("/readyz") for _ in range(50)))
            assert {(a.status_code, a.text) for a in answers} == {(200, '{"status":"ok"}')}
            assert len(probes) == 1
            await asyncio.sleep(1.1)  # past the reuse period, a new round
            assert (await client.get("/readyz")).status_code == 200
            assert len(probes) == 2
    finally:
        served.stop()
        sites.stop()

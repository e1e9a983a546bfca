"""Stalled request bodies cannot take the registry down (issue 7, finding 1).

The review's attack, on real processes started as `make run` starts them:
a signed-in caller opens more connections than the gateway's upstream pool
holds, sends `POST /v1/sites/lookup` announcing a 100 kB body, one byte of
it, then nothing. Before, every read of the registry answered 503 for
everyone until the sockets were closed. Now the gateway holds small bodies
itself (no upstream connection is taken until a body is whole), cuts a
stalled one with a 408, and streams uploads through their own pool, a few
per caller.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from spp_shared.kit.errors import PROBLEM_MEDIA_TYPE, TYPE_BASE
from tests.e2e.processes import gateway_and_sites, platform_env
from tests.gateway.test_bodies import closed_by_peer, read_answer, stall

pytestmark = pytest.mark.e2e

TOKEN = "e2e-stall-bootstrap-token-0123456789abc"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
POOL = 4  # upstream connections per service
IDLE = 3.0  # seconds a small body may stall (room for a loaded machine)


@pytest.fixture
def platform(fresh_database_url: Callable[[str], str], tmp_path: Path) -> Iterator[str]:
    env, sites_port, gateway_port = platform_env(
        fresh_database_url,
        "e2e_stall",
        TOKEN,
        SPP_GATEWAY_POOL_SIZE_PER_HOST=str(POOL),
        SPP_GATEWAY_UPLOAD_POOL_SIZE=str(POOL),
        SPP_GATEWAY_POOL_TIMEOUT="2",
        SPP_GATEWAY_BODY_IDLE_TIMEOUT=str(IDLE),
        SPP_GATEWAY_UPLOAD_IDLE_TIMEOUT=str(IDLE * 2),
        SPP_GATEWAY_HEADER_TIMEOUT=str(IDLE),
    )
    with gateway_and_sites(env, sites_port, gateway_port, tmp_path / "e2e.log") as (gateway, _):
        yield gateway


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_stalled_bodies_leave_the_registry_to_everyone(platform: str) -> None:
    port = _port(platform)
    socks = [stall(port, "/v1/sites/lookup", headers=ADMIN) for _ in range(POOL * 3)]
    # Slowloris: connections that never finish their request head.
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(POOL)]
    for sock in silent[1:]:
        sock.sendall(b"GET /v1/sites HTTP/1.1\r\nX-Slow: ")
    uploads = [
        stall(
            port,
            "/v1/sites/import",
            headers={**ADMIN, "Content-Type": "text/csv"},
            length=10_000_000,
            first=b"network,external_code,name\n",
        )
        for _ in range(2)
    ]
    try:
        time.sleep(0.5)  # every stall is in, holding what it can
        started = time.monotonic()
        with httpx.Client(base_url=platform, timeout=10) as client:
            for path in ("/v1/sites?limit=1", "/v1/networks?limit=1", "/v1/networks/caf"):
                resp = client.get(path)
                assert resp.status_code == 200, (path, resp.status_code, resp.text)
            lookup = client.post("/v1/sites/lookup", headers=ADMIN, json={"ids": []})
            assert lookup.status_code == 200, lookup.text
            # A third upload from the same caller is refused, not queued.
            third = client.post(
                "/v1/sites/import",
                headers={**ADMIN, "Content-Type": "text/csv"},
                content=b"network,external_code,name\n",
            )
            assert third.status_code == 429, third.text
            assert third.headers["content-type"] == PROBLEM_MEDIA_TYPE
            assert third.json()["type"] == TYPE_BASE + "too-many-uploads"
        # Answered while the stalls were still held, without waiting them out.
        assert time.monotonic() - started < IDLE

        for sock in socks:
            status, headers, body = read_answer(sock, timeout=IDLE * 5)
            assert status == 408
            assert headers["content-type"] == PROBLEM_MEDIA_TYPE
            assert headers["connection"] == "close"
            assert orjson.loads(body)["type"] == TYPE_BASE + "request-timeout"
        for sock in uploads:
            status, _, body = read_answer(sock, timeout=IDLE * 8)
            assert status == 408, body
        for sock in silent:
            assert closed_by_peer(sock, timeout=IDLE * 5)
    finally:
        for sock in socks + uploads + silent:
            sock.close()

"""Whose X-Forwarded-For a real gateway process believes (``python -m spp_gateway``).

The anonymous rate limits count per client address. If the gateway took
X-Forwarded-For from any local caller, that caller would choose the address
its requests count against, a fresh budget per request. By default no
forwarded header is trusted; a deployment names its proxy in
``SPP_GATEWAY_FORWARDED_ALLOW_IPS``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import free_port, stop, wait_ready
from tests.support import ServiceDB

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
BUDGET = 3  # anonymous reads a minute


@pytest.fixture
def start_gateway(gateway_db: ServiceDB, tmp_path: Path) -> Iterator[Callable[..., str]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(**env_extra: str) -> str:
        port = free_port()
        nowhere = f"http://127.0.0.1:{free_port()}"  # no upstream: the limiter answers first
        env = {k: v for k, v in os.environ.items() if k != "FORWARDED_ALLOW_IPS"}
        env.update(
            SPP_GATEWAY_DATABASE_URL=gateway_db.url,
            SPP_GATEWAY_SITES_URL=nowhere,
            SPP_GATEWAY_FEEDBACK_URL=nowhere,
            SPP_GATEWAY_INDICATORS_URL=nowhere,
            SPP_GATEWAY_LABELLING_URL=nowhere,
            SPP_GATEWAY_RATE_LIMIT_READ_ANONYMOUS=f"{BUDGET}/minute",
            **env_extra,
        )
        env.pop("SPP_GATEWAY_REDIS_URL", None)  # this process's own counters
        if "SPP_GATEWAY_FORWARDED_ALLOW_IPS" not in env_extra:
            env.pop("SPP_GATEWAY_FORWARDED_ALLOW_IPS", None)  # the default, whatever the shell
        log = tmp_path / f"gateway-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "spp_gateway", "--port", str(port)],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=out,
            )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_ready(f"{url}/healthz", proc, log)
        return url

    yield start
    stop(procs)


def statuses(url: str) -> list[tuple[str, int]]:
    """Two anonymous callers, both on 127.0.0.1, each claiming another address."""
    seen: list[tuple[str, int]] = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(BUDGET):
            for claimed in ("203.0.113.1", "203.0.113.2"):
                resp = client.get("/v1/networks", headers={"X-Forwarded-For": claimed})
                seen.append((claimed, resp.status_code))
    return seen


def test_a_local_caller_cannot_choose_its_rate_limit_address(
    start_gateway: Callable[..., str],
) -> None:
    # It was: 127.0.0.1 trusted by default, so each claimed address had its own budget.
    seen = statuses(start_gateway())
    allowed = [claimed for claimed, status in seen if status != 429]
    assert len(allowed) == BUDGET, seen
    assert [status for _, status in seen[BUDGET:]] == [429] * BUDGET


def test_a_named_proxy_is_believed(start_gateway: Callable[..., str]) -> None:
    seen = statuses(start_gateway(SPP_GATEWAY_FORWARDED_ALLOW_IPS="127.0.0.1"))
    assert all(status != 429 for _, status in seen), seen

"""Starting and stopping the platform's real processes in end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(log: Path | None, lines: int = 40) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def wait_ready(
    url: str, proc: subprocess.Popen[bytes], log: Path | None = None, timeout: float = 60
) -> None:
    """Wait for ``url`` to answer 200; fail with the log's end if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{log_tail(log)}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready in {timeout}s:\n{log_tail(log)}")


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process, then wait; kill what does not stop."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def platform_env(
    database_url: Callable[[str], str], name: str, token: str, **settings: str
) -> tuple[dict[str, str], int, int]:
    """The environment of a gateway in front of the sites service alone (the
    other services are not started: the gateway must say so, not hang), with
    ``settings`` on top; and the sites and gateway ports."""
    sites_port, gateway_port = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        SPP_SITES_DATABASE_URL=database_url(f"{name}_sites"),
        SPP_GATEWAY_DATABASE_URL=database_url(f"{name}_gateway"),
        SPP_BOOTSTRAP_TOKEN=token,
        SPP_GATEWAY_SITES_URL=f"http://127.0.0.1:{sites_port}",
        SPP_GATEWAY_FEEDBACK_URL=f"http://127.0.0.1:{free_port()}",
        SPP_GATEWAY_INDICATORS_URL=f"http://127.0.0.1:{free_port()}",
        SPP_GATEWAY_LABELLING_URL=f"http://127.0.0.1:{free_port()}",
    )
    env.update(settings)  # may stand in for one of the above
    return env, sites_port, gateway_port


@contextmanager
def gateway_and_sites(
    env: dict[str, str], sites_port: int, gateway_port: int, log_path: Path
) -> Iterator[tuple[str, str]]:
    """Migrate, start the sites service then the gateway as `make run` does;
    yield the gateway's and the service's URLs; stop both."""
    with log_path.open("wb") as log:
        subprocess.run(
            [sys.executable, "-m", "spp_gateway", "migrate"],
            env=env,
            check=True,
            stdout=log,
            stderr=log,
        )
        sites = [sys.executable, "-m", "spp_sites", "serve", "--migrate"]
        procs = [
            subprocess.Popen([*sites, "--port", str(sites_port)], env=env, stdout=log, stderr=log)
        ]
        try:
            wait_ready(f"http://127.0.0.1:{sites_port}/healthz", procs[0], log_path)
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "spp_gateway", "--port", str(gateway_port)],
                    env=env,
                    stdout=log,
                    stderr=log,
                )
            )
            wait_ready(f"http://127.0.0.1:{gateway_port}/healthz", procs[1], log_path)
            yield f"http://127.0.0.1:{gateway_port}", f"http://127.0.0.1:{sites_port}"
        finally:
            stop(procs)

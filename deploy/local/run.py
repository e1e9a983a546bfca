"""`make run`: the whole platform on one machine, on its embedded default (SQLite).

Migrates each service and the gateway, loads reference and demo data, starts
the four services (:8001-:8004) and their workers, a development OIDC provider
for agents' sign-in (:8009) and the gateway (:8000), runs the periodic commands
on their schedule (CronJobs in production), and stops them all on Ctrl-C.
Runs with the workspace's interpreter; imports no service (it starts them as
processes, like production would), only the kit's key generation.

``--var DIR --port-base N --no-demo`` start a second, throw-away platform
beside the first (tools/openapi_check.py fuzzes one): the gateway on N, the
services on N+1..N+4, the OIDC provider on N+9, databases and logs in DIR.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from spp_shared.kit.keys import PUBLIC_KEYS_ENV, platform_keys_env

ROOT = Path(__file__).resolve().parents[2]
VAR = ROOT / ".var"
GATEWAY_PORT = 8000
# The services' and the development OIDC provider's (deploy/local/dev_oidc.py)
# ports, as offsets from the gateway's.
SERVICE_OFFSETS = {"sites": 1, "feedback": 2, "indicators": 3, "labelling": 4}
OIDC_OFFSET = 9
OIDC_AUDIENCE = "spp-local"
# Periodic commands and how often they run, in seconds: (service, command, every).
PERIODIC: list[tuple[str, str, int]] = [
    ("sites", "purge-idempotency", 3600),
    *((name, "purge-jobs", 24 * 3600) for name in SERVICE_OFFSETS),
]

# Set by main() from the command line; the defaults are `make run`'s.
SERVICES = {name: GATEWAY_PORT + offset for name, offset in SERVICE_OFFSETS.items()}
OIDC_PORT = GATEWAY_PORT + OIDC_OFFSET


def service_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in SERVICES:
        env.setdefault(f"SPP_{name.upper()}_DATABASE_URL", f"sqlite+aiosqlite:///{VAR / name}.db")
    for name, port in SERVICES.items():
        env.setdefault(f"SPP_GATEWAY_{name.upper()}_URL", f"http://127.0.0.1:{port}")
    env.setdefault("SPP_GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{VAR / 'gateway'}.db")
    env.setdefault("SPP_GATEWAY_OIDC_ISSUER", f"http://127.0.0.1:{OIDC_PORT}")
    env.setdefault("SPP_GATEWAY_OIDC_AUDIENCE", OIDC_AUDIENCE)
    env.setdefault("SPP_LOG_JSON", "true")
    return env


def wait_healthy(url: str, timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    return False


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Schedule:
    """Runs each periodic command at start, then every so often; never two
    runs of one command at once. A failure is reported, the platform goes on."""

    def __init__(self, env: dict[str, str], log: IO[bytes]) -> None:
        self.env, self.log = env, log
        self.due = [0.0] * len(PERIODIC)
        self.running: dict[int, subprocess.Popen[bytes]] = {}

    def tick(self) -> None:
        now = time.monotonic()
        for i, (service, command, every) in enumerate(PERIODIC):
            proc = self.running.get(i)
            if proc is not None:
                if proc.poll() is None:
                    continue
                del self.running[i]
                if proc.returncode:
                    print(f"{service} {command} failed; see {VAR}/periodic.log", file=sys.stderr)
            if now >= self.due[i]:
                self.due[i] = now + every
                self.running[i] = subprocess.Popen(
                    [sys.executable, "-m", f"spp_{service}", command],
                    env=self.env,
                    cwd=ROOT,
                    stdout=self.log,
                    stderr=self.log,
                )

    def stop(self) -> None:
        for proc in self.running.values():
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the children like Ctrl-C does


def _configure(argv: list[str] | None) -> bool:
    """Apply the command line to the module's layout; whether to load demo data."""
    global VAR, GATEWAY_PORT, SERVICES, OIDC_PORT
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--var", type=Path, default=VAR, help="databases and logs")
    parser.add_argument("--port-base", type=int, default=GATEWAY_PORT, help="the gateway's port")
    parser.add_argument("--no-demo", action="store_true", help="skip the demo data")
    args = parser.parse_args(argv)
    VAR = args.var.resolve()
    GATEWAY_PORT = args.port_base
    SERVICES = {name: GATEWAY_PORT + offset for name, offset in SERVICE_OFFSETS.items()}
    OIDC_PORT = GATEWAY_PORT + OIDC_OFFSET
    return not args.no_demo


def main(argv: list[str] | None = None) -> int:
    demo = _configure(argv)
    signal.signal(signal.SIGTERM, _stop)
    # A shell starting us in the background ignores SIGINT for us; Ctrl-C or
    # `kill -INT` must still stop the whole platform cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    busy = [p for p in [*SERVICES.values(), GATEWAY_PORT, OIDC_PORT] if port_taken(p)]
    if busy:
        print(f"ports already in use: {busy}; is the platform already running?", file=sys.stderr)
        return 1
    VAR.mkdir(parents=True, exist_ok=True)
    env = service_env()
    token = env.get("SPP_BOOTSTRAP_TOKEN")
    if not token:
        token = "dev-" + secrets.token_urlsafe(24)
        env["SPP_BOOTSTRAP_TOKEN"] = token
    # Metrics and the readiness details are for the operations tooling only.
    ops_token = env.get("SPP_GATEWAY_METRICS_TOKEN")
    if not ops_token:
        ops_token = "dev-ops-" + secrets.token_urlsafe(24)
        env["SPP_GATEWAY_METRICS_TOKEN"] = ops_token
    # Each process refuses to start without its own private key, and each
    # service without the public keys of all: a fresh set for each run,
    # unless the environment already gives them (then it gives them all).
    if PUBLIC_KEYS_ENV not in env:
        env.update(platform_keys_env(("gateway", *SERVICES)))
    py = sys.executable

    for name in SERVICES:
        print(f"migrating {name}...", flush=True)
        subprocess.run([py, "-m", f"spp_{name}", "migrate"], env=env, check=True, cwd=ROOT)
    print("migrating gateway...", flush=True)
    subprocess.run([py, "-m", "spp_gateway", "migrate"], env=env, check=True, cwd=ROOT)
    if demo:
        print("loading demo data (SP+ structures and France services)...", flush=True)
        subprocess.run([py, "-m", "spp_sites", "seed-demo"], env=env, check=True, cwd=ROOT)

    procs: list[subprocess.Popen[bytes]] = []
    log_files = []
    schedule: Schedule | None = None
    try:
        for name, port in SERVICES.items():
            log = (VAR / f"{name}.log").open("ab")
            log_files.append(log)
            procs.append(
                subprocess.Popen(
                    [py, "-m", f"spp_{name}", "serve", "--port", str(port)],
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=log,
                )
            )
        log = (VAR / "oidc.log").open("ab")
        log_files.append(log)
        procs.append(
            subprocess.Popen(
                [
                    py,
                    str(ROOT / "deploy" / "local" / "dev_oidc.py"),
                    "--port",
                    str(OIDC_PORT),
                    "--audience",
                    OIDC_AUDIENCE,
                ],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )
        )
        log = (VAR / "gateway.log").open("ab")
        log_files.append(log)
        procs.append(
            subprocess.Popen(
                [py, "-m", "spp_gateway", "--port", str(GATEWAY_PORT)],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )
        )
        checks = [
            *((n, f"http://127.0.0.1:{p}/healthz") for n, p in SERVICES.items()),
            ("oidc", f"http://127.0.0.1:{OIDC_PORT}/.well-known/openid-configuration"),
            ("gateway", f"http://127.0.0.1:{GATEWAY_PORT}/healthz"),
        ]
        for name, url in checks:
            if not wait_healthy(url):
                print(f"{name} did not start; see {VAR}/{name}.log", file=sys.stderr)
                return 1
        # Once the services answer: ten interpreters starting at once on a
        # small machine kept the services past their health deadline.
        for name in SERVICES:
            log = (VAR / f"{name}-worker.log").open("ab")
            log_files.append(log)
            procs.append(
                subprocess.Popen(
                    [py, "-m", f"spp_{name}", "worker"], env=env, cwd=ROOT, stdout=log, stderr=log
                )
            )
        print(
            "\nServices Publics+ is running.\n"
            f"  API (gateway):   http://127.0.0.1:{GATEWAY_PORT}/v1/...\n"
            f"  Interactive docs: http://127.0.0.1:{GATEWAY_PORT}/docs\n"
            f"  Merged OpenAPI:  http://127.0.0.1:{GATEWAY_PORT}/openapi.json\n"
            f"  Admin token (development only): {token}\n"
            f"    export SPP_TOKEN={token}\n"
            f"  Operations token (/metrics, /readyz details): {ops_token}\n"
            f"    export SPP_OPS_TOKEN={ops_token}\n"
            f"  Agent sign-in (development OIDC provider): http://127.0.0.1:{OIDC_PORT}/token\n"
            f"  Logs: {VAR}/*.log (workers: {VAR}/*-worker.log, periodic commands:"
            f" {VAR}/periodic.log)   Databases: {VAR}/*.db\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        log = (VAR / "periodic.log").open("ab")
        log_files.append(log)
        schedule = Schedule(env, log)
        while all(p.poll() is None for p in procs):
            schedule.tick()
            time.sleep(0.5)
        print(f"a process stopped; see {VAR}/*.log", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if schedule is not None:
            schedule.stop()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in log_files:
            f.close()
        print("stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())

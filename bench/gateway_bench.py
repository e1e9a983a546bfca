"""Gateway overhead: the same site GET, direct and through the gateway, one run.

Starts an upstream (the real sites service by default) and the gateway as
separate processes, warms both up, then runs wrk alternately on the direct
and the proxied URL (direct, gateway, direct, gateway...) so both see the
same machine state, and prints req/s, p50 and p99 for each and the ratio
gateway/direct. The aim (issue: gateway) is a ratio of at least 0.70.

    .venv/bin/python bench/gateway_bench.py                    # real sites service
    .venv/bin/python bench/gateway_bench.py --upstream minimal # one SQLite row, FastAPI
    .venv/bin/python bench/gateway_bench.py --post-lookup      # a small POST body, held whole
    .venv/bin/python bench/gateway_bench.py --upstream-cmd 'python -m x serve --port {port}' \
        --path /v1/sites/1

Needs wrk (``apt-get install -y wrk``). Compare ratios from one run, never
absolute figures across runs (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_TOKEN = "bench-bootstrap-token-0123456789abcdef"
AIM = 0.70
MINIMAL_SITE_ID = "b3f1c2d4-0000-4000-8000-000000000001"


# --- the minimal upstream: FastAPI reading one row from SQLite -----------------


def serve_minimal(port: int, db_path: str, access_log: bool) -> None:
    """A stand-in for the sites service: one SQLite row per GET, kit middleware."""
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    import aiosqlite
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from spp_shared.kit.errors import NotFound, install_problem_handlers
    from spp_shared.kit.logging import RequestContextMiddleware, configure_logging

    configure_logging("INFO", True)
    state: dict[str, aiosqlite.Connection] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["db"] = await aiosqlite.connect(db_path)
        try:
            yield
        finally:
            await state["db"].close()

    app = FastAPI(lifespan=lifespan)
    install_problem_handlers(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/networks/{code}")  # no database: the proxy's worst case
    async def get_network(code: str) -> dict[str, str]:
        return {"code": code, "name": "Caisses d'allocations familiales"}

    @app.get("/v1/sites/{site_id}")
    async def get_site(site_id: str) -> JSONResponse:
        async with state["db"].execute(
            "SELECT id, network, name, city FROM site WHERE id = ?", (site_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise NotFound(f"No site {site_id}")
        return JSONResponse(dict(zip(("id", "network", "name", "city"), row, strict=True)))

    uvicorn.run(
        RequestContextMiddleware(app, service="sites", access_log=access_log),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        server_header=False,
        access_log=False,
        log_level="warning",
    )


def make_minimal_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE site (id TEXT PRIMARY KEY, network TEXT, name TEXT, city TEXT)")
        db.executemany(
            "INSERT INTO site VALUES (?, ?, ?, ?)",
            [(MINIMAL_SITE_ID, "caf", "Caf de Lyon", "Lyon")]
            + [(f"site-{i}", "caf", f"Caf {i}", "Paris") for i in range(1000)],
        )


# --- processes -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    return False


def http(
    method: str,
    url: str,
    body: Any = None,
    token: str | None = None,
    headers: list[str] | None = None,
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for header in headers or ():
        name, _, value = header.partition(": ")
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


# --- wrk -----------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process (Linux); 0 where /proc is absent."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    url: str,
    *,
    threads: int,
    connections: int,
    seconds: int,
    headers: list[str],
    script: str | None = None,
) -> WrkResult:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", script]
    for header in headers:
        cmd += ["-H", header]
    out = subprocess.run([*cmd, url], check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    return WrkResult(rps, p50, p99, errors, requests)


# --- the run -------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", choices=["sites", "minimal"], default="sites")
    parser.add_argument(
        "--upstream-cmd",
        help="command starting the upstream; {port} is replaced (overrides --upstream)",
    )
    parser.add_argument("--path", help="GET path to measure (default: a site created first)")
    parser.add_argument(
        "--post-lookup",
        action="store_true",
        help="measure POST /v1/sites/lookup with a small JSON body (the gateway reads it whole "
        "before calling the service) instead of a GET",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2, help="direct+gateway pairs")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per target")
    parser.add_argument(
        "--credential",
        choices=["anonymous", "bootstrap", "api-key"],
        default="api-key",
        help="what the client sends through the gateway (api-key: a network key, looked up "
        "in the gateway's database and cached)",
    )
    parser.add_argument(
        "--authenticated",
        action="store_true",
        help="same as --credential bootstrap (kept for older notes)",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="share the rate-limit counters in Redis (e.g. redis://127.0.0.1:6379/0)",
    )
    parser.add_argument(
        "--no-rate-limits", action="store_true", help="turn the gateway's rate limiter off"
    )
    parser.add_argument("--no-access-log", action="store_true", help="both sides log nothing")
    parser.add_argument("--serve-minimal", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve_minimal:
        serve_minimal(args.port, args.db, access_log=not args.no_access_log)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")

    if args.authenticated:
        args.credential = "bootstrap"
    workdir = Path(tempfile.mkdtemp(prefix="spp-gateway-bench-"))
    up_port, gw_port = free_port(), free_port()
    from spp_shared.kit.keys import platform_keys_env

    env = {
        **os.environ,
        **platform_keys_env(("gateway", "sites")),
        "SPP_BOOTSTRAP_TOKEN": BENCH_TOKEN,
        "SPP_GATEWAY_SITES_URL": f"http://127.0.0.1:{up_port}",
        "SPP_GATEWAY_LOG_LEVEL": "warning",
        "SPP_GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/gateway.db",
        "SPP_SITES_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/sites.db",
        # The limiter runs on every request but never refuses: its cost is measured.
        "SPP_GATEWAY_RATE_LIMIT_READ": "100000000/minute",
        "SPP_GATEWAY_RATE_LIMIT_READ_ANONYMOUS": "100000000/minute",
        "SPP_GATEWAY_RATE_LIMIT_WRITE": "100000000/minute",
        "SPP_GATEWAY_RATE_LIMIT_LOOKUP": "100000000/minute",
        "SPP_GATEWAY_RATE_LIMITS_ENABLED": "false" if args.no_rate_limits else "true",
    }
    if args.redis:
        env["SPP_GATEWAY_REDIS_URL"] = args.redis
    if args.no_access_log:
        env["SPP_GATEWAY_ACCESS_LOG"] = "false"
        env["SPP_SITES_ACCESS_LOG"] = "false"
    py = sys.executable
    if args.upstream_cmd:
        up_cmd = shlex.split(args.upstream_cmd.format(port=up_port))
        label = args.upstream_cmd
    elif args.upstream == "minimal":
        make_minimal_db(workdir / "minimal.db")
        up_cmd = [
            py,
            __file__,
            "--serve-minimal",
            "--port",
            str(up_port),
            "--db",
            str(workdir / "minimal.db"),
        ]
        if args.no_access_log:
            up_cmd.append("--no-access-log")
        label = "minimal FastAPI + SQLite row"
    else:
        up_cmd = [py, "-m", "spp_sites", "serve", "--migrate", "--port", str(up_port)]
        label = "spp_sites (SQLite)"
    gw_cmd = [py, "-m", "spp_gateway", "--port", str(gw_port)]
    subprocess.run([py, "-m", "spp_gateway", "migrate"], env=env, check=True, capture_output=True)
    # A direct call must carry what the gateway would send (services refuse
    # calls without an assertion): an anonymous one, signed with the gateway's
    # key once for the run, for the one request the run repeats.
    from spp_shared.contracts.permissions import Role
    from spp_shared.kit.identity import (
        ANONYMOUS,
        GATEWAY_ISSUER,
        AssertionSigner,
        Principal,
        PrincipalKind,
    )

    gateway_key = AssertionSigner(GATEWAY_ISSUER, env["SPP_GATEWAY_SIGNING_KEY"], setting="bench")
    direct_principal = ANONYMOUS
    if args.post_lookup:  # the look-up is for signed-in callers
        direct_principal = Principal(
            subject="bench", kind=PrincipalKind.bootstrap, roles=[Role.programme_admin]
        )
        if args.credential == "anonymous":
            args.credential = "bootstrap"

    def direct_assertion(method: str, path: str) -> list[str]:
        token = gateway_key.sign(direct_principal, method=method, path=path, ttl=3600)
        return [f"X-SPP-Assertion: {token}"]

    procs: list[subprocess.Popen[bytes]] = []
    try:
        # Access logs go to /dev/null: written (and paid for), not kept.
        for cmd in (up_cmd, gw_cmd):
            procs.append(
                subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        direct_base = f"http://127.0.0.1:{up_port}"
        gateway_base = f"http://127.0.0.1:{gw_port}"
        for proc, base in zip(procs, (direct_base, gateway_base), strict=True):
            if not wait_http(base + "/healthz", proc):
                raise SystemExit(
                    f"{shlex.join(proc.args)} did not start (exit {proc.poll()});"
                    " run it by hand to see why"
                )

        path = args.path
        if path is None and args.upstream == "minimal" and not args.upstream_cmd:
            path = f"/v1/sites/{MINIMAL_SITE_ID}"
        if path is None:
            status, body = http(
                "POST",
                gateway_base + "/v1/sites",
                {"network": "caf", "external_code": "BENCH-0001", "name": "Caf de Lyon (bench)"},
                token=BENCH_TOKEN,
            )
            if status == 201 and isinstance(body, dict) and "id" in body:
                path = f"/v1/sites/{body['id']}"
            else:
                print(f"note: could not create a site ({status}); measuring /v1/networks/caf")
                path = "/v1/networks/caf"
        gw_headers: list[str] = []
        if args.credential == "bootstrap":
            gw_headers = [f"Authorization: Bearer {BENCH_TOKEN}"]
        elif args.credential == "api-key":
            status, body = http(
                "POST",
                gateway_base + "/v1/api-keys",
                {"name": "bench", "owner": "bench", "roles": ["network_manager"], "network": "caf"},
                token=BENCH_TOKEN,
            )
            if status != 201:
                raise SystemExit(f"could not create the bench API key ({status}): {body}")
            gw_headers = [f"Authorization: Bearer {body['secret']}"]
        wrk: dict[str, Any] = {"threads": args.threads, "connections": args.connections}
        method = "GET"
        if args.post_lookup:
            # Ten keys: the site itself and nine that do not exist, about 400 bytes.
            site_id = path.rsplit("/", 1)[1]
            lookup = {"ids": [site_id, *(f"{n:0>26}" for n in range(9))]}
            script = workdir / "post.lua"
            script.write_text(
                'wrk.method = "POST"\n'
                f"wrk.body = '{json.dumps(lookup)}'\n"
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
            wrk["script"] = str(script)
            path, method = "/v1/sites/lookup", "POST"
            direct_headers = direct_assertion(method, path)
            for base, hdrs in ((direct_base, direct_headers), (gateway_base, gw_headers)):
                status, _ = http("POST", base + path, lookup, headers=hdrs)
                if status != 200:
                    raise SystemExit(f"POST {base}{path} answered {status}")
        else:
            direct_headers = direct_assertion(method, path)
            for base, hdrs in ((direct_base, direct_headers), (gateway_base, gw_headers)):
                status, _ = http("GET", base + path, headers=hdrs)
                if status != 200:
                    raise SystemExit(f"GET {base}{path} answered {status}")

        run_wrk(direct_base + path, seconds=args.warmup, headers=direct_headers, **wrk)
        run_wrk(gateway_base + path, seconds=args.warmup, headers=gw_headers, **wrk)

        print(
            f"upstream: {label}; {method} {path}; wrk -t{args.threads} -c{args.connections} "
            f"-d{args.duration}s; {os.cpu_count()} CPUs; access log "
            f"{'off' if args.no_access_log else 'on'}"
            f"; gateway credential {args.credential}; rate limits "
            f"{'off' if args.no_rate_limits else ('Redis' if args.redis else 'in memory')}"
        )
        print(
            f"{'round':>5} {'path':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
            f"  CPU µs/request (upstream, gateway)"
        )
        direct: list[WrkResult] = []
        proxied: list[WrkResult] = []
        for n in range(1, args.rounds + 1):
            for name, url, headers, results in (
                ("direct", direct_base + path, direct_headers, direct),
                ("gateway", gateway_base + path, gw_headers, proxied),
            ):
                before = [cpu_seconds(p.pid) for p in procs]
                r = run_wrk(url, seconds=args.duration, headers=headers, **wrk)
                spent = [cpu_seconds(p.pid) - b for p, b in zip(procs, before, strict=True)]
                results.append(r)
                # CPU per request is what the gateway costs, whatever else runs
                # on the machine; req/s depend on the neighbours too.
                per_request = ", ".join(f"{1e6 * c / max(r.requests, 1):.0f}" for c in spent)
                print(
                    f"{n:>5} {name:<8} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
                    f"{r.errors:>6}  {per_request}",
                    flush=True,
                )

        d_rps = statistics.median(r.rps for r in direct)
        g_rps = statistics.median(r.rps for r in proxied)
        one = {**wrk, "threads": 1, "connections": 1, "seconds": 3}
        one_d = run_wrk(direct_base + path, headers=direct_headers, **one)
        one_g = run_wrk(gateway_base + path, headers=gw_headers, **one)
        ratio = g_rps / d_rps
        med = statistics.median
        print(
            f"median  direct {d_rps:.0f} req/s (p50 {med(r.p50_ms for r in direct):.2f}"
            f" / p99 {med(r.p99_ms for r in direct):.2f} ms), gateway {g_rps:.0f}"
            f" req/s (p50 {med(r.p50_ms for r in proxied):.2f}"
            f" / p99 {med(r.p99_ms for r in proxied):.2f} ms)"
        )
        print(
            f"ratio gateway/direct: {ratio:.2f}; "
            f"added latency at 1 connection: {one_g.p50_ms - one_d.p50_ms:+.2f} ms p50 "
            f"({one_d.p50_ms:.2f} -> {one_g.p50_ms:.2f})"
        )
        verdict = "met" if ratio >= AIM else "NOT met"
        print(f"aim: gateway >= {AIM:.0%} of direct -> {verdict} ({ratio:.0%})")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""A site GET against the stack's ceiling, on PostgreSQL, in one run.

Loads the programme's real structures (the SP+ export and the France
services list, 15,428 sites: ``python -m spp_sites seed-demo``) into a
fresh PostgreSQL database, then starts, each as its own process with one
uvicorn worker:

- minimal: FastAPI + an asyncpg pool reading the same row by primary key
  and answering it as JSON (no middleware, no identity): the ceiling;
- sites: the real sites service (``python -m spp_sites serve``) with the
  settings production uses (JSON access log, metrics, guards, assertion);
- gateway: the real gateway in front of that sites service, called with a
  network manager's API key, rate limiter on (limits too high to refuse).

It drives the same ``GET /v1/sites/{id}`` on each with wrk (same threads,
same connections), interleaved round by round (minimal, sites, gateway,
minimal...) so the three see the same machine, and prints req/s, p50/p99,
the CPU each process spent per request, and the ratios sites/minimal
(aim >= 0.50) and gateway/sites (aim >= 0.70), per round and as medians.

    .venv/bin/python bench/site_get_bench.py
    .venv/bin/python bench/site_get_bench.py --rounds 5 --duration 15
    .venv/bin/python bench/site_get_bench.py --profile /tmp/sites.txt  # py-spy, sites only

Needs wrk (``apt-get install -y wrk``) and a PostgreSQL it may create
databases in (``--pg``). Compare ratios from one run, never absolute
figures across runs (../shared/design/PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

import asyncpg
from gateway_bench import (
    BENCH_TOKEN,
    WrkResult,
    cpu_seconds,
    free_port,
    http,
    run_wrk,
    wait_http,
)

AIM_SITES = 0.50  # sites service / minimal FastAPI + asyncpg
AIM_GATEWAY = 0.70  # gateway / sites service
SITES_DB = "spp_site_get_bench"
GATEWAY_DB = "spp_site_get_bench_gateway"
TARGETS = ("minimal", "sites", "gateway")


# --- the ceiling: FastAPI + asyncpg, one row by primary key ---------------------


def serve_minimal(port: int, dsn: str, pool_size: int) -> None:
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    import orjson
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import Response

    pool: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool.append(await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size))
        try:
            yield
        finally:
            await pool[0].close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/sites/{site_id}")
    async def get_site(site_id: str) -> Response:
        row = await pool[0].fetchrow("SELECT * FROM sites WHERE id = $1", site_id)
        if row is None:
            return Response(status_code=404)
        return Response(orjson.dumps(dict(row)), media_type="application/json")

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        server_header=False,
        access_log=False,
        log_level="warning",
    )


# --- the database ----------------------------------------------------------------


async def scratch_db(base: str, name: str) -> str:
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return base.rsplit("/", 1)[0] + "/" + name


async def drop_db(base: str, name: str) -> None:
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def pick_site(dsn: str) -> tuple[str, int]:
    """A fully described site (address, coordinates, contact, hours), and the
    number of sites loaded. The first by id among them, so runs agree."""
    conn = await asyncpg.connect(dsn)
    try:
        count = await conn.fetchval("SELECT count(*) FROM sites")
        site_id = await conn.fetchval(
            "SELECT id FROM sites WHERE opening_hours IS NOT NULL AND latitude IS NOT NULL"
            " AND phone IS NOT NULL AND email IS NOT NULL AND address_line IS NOT NULL"
            " ORDER BY id LIMIT 1"
        )
        if site_id is None:
            raise SystemExit("no fully described site was loaded")
        # What a production database has after autovacuum: statistics.
        await conn.execute("ANALYZE")
        return str(site_id), int(count)
    finally:
        await conn.close()


# --- the run -----------------------------------------------------------------------


def start(cmd: list[str], env: dict[str, str], health: str) -> subprocess.Popen[bytes]:
    # Logs go to /dev/null: written (and paid for), not kept.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_http(health, proc):
        proc.terminate()
        raise SystemExit(f"{shlex.join(cmd)} did not start (exit {proc.poll()}); run it by hand")
    return proc


def summary(name: str, results: list[WrkResult]) -> str:
    med = statistics.median
    rps = [r.rps for r in results]
    return (
        f"{name:<8} {med(rps):>7.0f} req/s (runs {min(rps):.0f}-{max(rps):.0f}), "
        f"p50 {med(r.p50_ms for r in results):.2f} ms, p99 {med(r.p99_ms for r in results):.2f} ms"
    )


def ratio_line(label: str, num: list[WrkResult], den: list[WrkResult], aim: float) -> str:
    per_round = [n.rps / d.rps for n, d in zip(num, den, strict=True)]
    value = statistics.median(n.rps for n in num) / statistics.median(d.rps for d in den)
    verdict = "met" if value >= aim else "NOT met"
    rounds = ", ".join(f"{r:.2f}" for r in per_round)
    return f"{label}: {value:.2f} (per round {rounds}); aim >= {aim:.2f}: {verdict}"


def profile(pid: int, out: str, seconds: int, url: str, headers: list[str], wrk: dict) -> None:
    """Sample the sites service with py-spy while wrk drives it; print the
    functions holding the most samples (inclusive), keep the raw folded stacks."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy on PATH (pip install py-spy)")
    rec = subprocess.Popen(
        [
            spy,
            "record",
            "-f",
            "raw",
            "-r",
            "250",
            "-d",
            str(seconds + 1),
            "-p",
            str(pid),
            "-o",
            out,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run_wrk(url, seconds=seconds, headers=headers, **wrk)
    rec.wait()
    total = 0
    inclusive: Counter[str] = Counter()
    for line in Path(out).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        for frame in set(stack.split(";")):
            inclusive[frame] += n
    print(f"profile of the sites service: {total} samples, raw stacks in {out}")
    for frame, n in inclusive.most_common(40):
        print(f"  {100 * n / total:5.1f}%  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pg",
        default="postgresql://root@127.0.0.1:5432/postgres",
        help="a PostgreSQL database to connect to for creating the bench's own",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="minimal+sites+gateway rounds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per target")
    parser.add_argument(
        "--pool-size", type=int, default=None, help="the service's pool size (default: its own)"
    )
    parser.add_argument(
        "--reuse-db", action="store_true", help="keep a database loaded by an earlier run"
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the databases after")
    parser.add_argument("--profile", metavar="FILE", help="py-spy the sites service after the runs")
    parser.add_argument("--serve-minimal", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    args = parser.parse_args()

    from spp_shared.kit.settings import ServiceSettings

    pool_size = args.pool_size or ServiceSettings.model_fields["database_pool_size"].default
    if args.serve_minimal:
        serve_minimal(args.port, args.dsn, pool_size)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")

    py = sys.executable
    sites_dsn = args.pg.rsplit("/", 1)[0] + "/" + SITES_DB
    gateway_dsn = args.pg.rsplit("/", 1)[0] + "/" + GATEWAY_DB
    from spp_shared.kit.keys import platform_keys_env

    ports = {name: free_port() for name in TARGETS}
    env = {
        **os.environ,
        **platform_keys_env(("gateway", "sites")),
        "SPP_BOOTSTRAP_TOKEN": BENCH_TOKEN,
        "SPP_SITES_DATABASE_URL": sites_dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
        "SPP_GATEWAY_DATABASE_URL": gateway_dsn.replace(
            "postgresql://", "postgresql+asyncpg://", 1
        ),
        "SPP_GATEWAY_SITES_URL": f"http://127.0.0.1:{ports['sites']}",
        # The limiter runs on every request but never refuses: its cost is measured.
        "SPP_GATEWAY_RATE_LIMIT_READ": "100000000/minute",
        "SPP_GATEWAY_RATE_LIMIT_READ_ANONYMOUS": "100000000/minute",
        "SPP_GATEWAY_RATE_LIMIT_WRITE": "100000000/minute",
        "SPP_GATEWAY_RATE_LIMIT_LOOKUP": "100000000/minute",
    }
    if args.pool_size:
        env["SPP_SITES_DATABASE_POOL_SIZE"] = str(args.pool_size)

    loaded = False
    if args.reuse_db:
        try:
            asyncio.run(pick_site(sites_dsn))
            loaded = True
        except (asyncpg.PostgresError, OSError, SystemExit):
            loaded = False
    if not loaded:
        print("loading the SP+ export and the France services list into PostgreSQL...", flush=True)
        asyncio.run(scratch_db(args.pg, SITES_DB))
        subprocess.run([py, "-m", "spp_sites", "migrate"], env=env, check=True)
        subprocess.run([py, "-m", "spp_sites", "seed-demo"], env=env, check=True)
    asyncio.run(scratch_db(args.pg, GATEWAY_DB))
    subprocess.run([py, "-m", "spp_gateway", "migrate"], env=env, check=True, capture_output=True)
    site_id, count = asyncio.run(pick_site(sites_dsn))
    path = f"/v1/sites/{site_id}"

    from spp_shared.kit.identity import ANONYMOUS, GATEWAY_ISSUER, AssertionSigner

    gateway_key = AssertionSigner(GATEWAY_ISSUER, env["SPP_GATEWAY_SIGNING_KEY"], setting="bench")

    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        procs["minimal"] = start(
            [py, __file__, "--serve-minimal", "--port", str(ports["minimal"]), "--dsn", sites_dsn]
            + (["--pool-size", str(args.pool_size)] if args.pool_size else []),
            env,
            f"http://127.0.0.1:{ports['minimal']}/healthz",
        )
        procs["sites"] = start(
            [py, "-m", "spp_sites", "serve", "--port", str(ports["sites"])],
            env,
            f"http://127.0.0.1:{ports['sites']}/healthz",
        )
        procs["gateway"] = start(
            [py, "-m", "spp_gateway", "--port", str(ports["gateway"])],
            env,
            f"http://127.0.0.1:{ports['gateway']}/healthz",
        )
        status, body = http(
            "POST",
            f"http://127.0.0.1:{ports['gateway']}/v1/api-keys",
            {"name": "bench", "owner": "bench", "roles": ["network_manager"], "network": "caf"},
            token=BENCH_TOKEN,
        )
        if status != 201:
            raise SystemExit(f"could not create the bench API key ({status}): {body}")
        headers = {
            "minimal": [],
            # Direct calls carry what the gateway would send: an anonymous
            # assertion for this GET, signed with the gateway's key once for the run.
            "sites": [
                "X-SPP-Assertion: " + gateway_key.sign(ANONYMOUS, method="GET", path=path, ttl=3600)
            ],
            "gateway": [f"Authorization: Bearer {body['secret']}"],
        }
        urls = {name: f"http://127.0.0.1:{ports[name]}{path}" for name in TARGETS}
        for name in TARGETS:
            status, answer = http("GET", urls[name], headers=headers[name])
            if status != 200 or not isinstance(answer, dict) or answer.get("id") != site_id:
                raise SystemExit(f"GET {urls[name]} answered {status}: {answer}")

        wrk = {"threads": args.threads, "connections": args.connections}
        for name in TARGETS:
            run_wrk(urls[name], seconds=args.warmup, headers=headers[name], **wrk)

        print(
            f"{count:,} sites on PostgreSQL; GET {path}; wrk -t{args.threads} "
            f"-c{args.connections} -d{args.duration}s; {os.cpu_count()} CPUs; "
            f"pool size {pool_size}; one uvicorn worker each"
        )
        print(
            f"{'round':>5} {'target':<8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}"
            "  CPU µs/request (minimal, sites, gateway)"
        )
        results: dict[str, list[WrkResult]] = {name: [] for name in TARGETS}
        for n in range(1, args.rounds + 1):
            for name in TARGETS:
                before = {k: cpu_seconds(p.pid) for k, p in procs.items()}
                r = run_wrk(urls[name], seconds=args.duration, headers=headers[name], **wrk)
                spent = [cpu_seconds(p.pid) - before[k] for k, p in procs.items()]
                results[name].append(r)
                per_request = ", ".join(f"{1e6 * c / max(r.requests, 1):.0f}" for c in spent)
                print(
                    f"{n:>5} {name:<8} {r.rps:>8.0f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} "
                    f"{r.errors:>6}  {per_request}",
                    flush=True,
                )
        one = {"threads": 1, "connections": 1, "seconds": 3}
        single = {name: run_wrk(urls[name], headers=headers[name], **one) for name in TARGETS}
        print("medians:")
        for name in TARGETS:
            print("  " + summary(name, results[name]))
        print(
            "  p50 at 1 connection: "
            + ", ".join(f"{name} {single[name].p50_ms:.2f} ms" for name in TARGETS)
        )
        print(ratio_line("sites/minimal", results["sites"], results["minimal"], AIM_SITES))
        print(ratio_line("gateway/sites", results["gateway"], results["sites"], AIM_GATEWAY))
        end_to_end = statistics.median(r.rps for r in results["gateway"]) / statistics.median(
            r.rps for r in results["minimal"]
        )
        print(f"gateway/minimal (end to end): {end_to_end:.2f}")
        if args.profile:
            profile(
                procs["sites"].pid,
                args.profile,
                args.duration,
                urls["sites"],
                headers["sites"],
                wrk,
            )
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        asyncio.run(drop_db(args.pg, GATEWAY_DB))
        if not args.keep_db:
            asyncio.run(drop_db(args.pg, SITES_DB))


if __name__ == "__main__":
    main()

"""Bulk import benchmark: 100,000 sites through POST /v1/sites/import.

For SQLite and PostgreSQL each: a fresh, migrated database; the import of a
generated 100k-row CSV streamed through the real app over HTTP (ASGI
transport, chunked body); the re-import of the same file (all unchanged);
then the same rows inserted by raw SQL into an empty sites table (SQLite
executemany, PostgreSQL COPY via asyncpg), as the ceiling. Prints rows/s,
the ratio ours/raw and the peak RSS of the process while importing.

Then the memory of a large import (``--memory-rows``, 1.5 million by default,
0 to skip): the sites service runs as its own process (``python -m spp_sites
serve``), a network manager's key sends a lean CSV of that many rows (the
shape of the security review's 50 MB file), as a dry run and as a real write,
and the bench reads the process's RSS from /proc: idle (after a warm-up
import of 10 rows), peak (VmHWM) and one second after the answer.

    .venv/bin/python bench/import_bench.py [--rows 100000] [--pg postgresql://...] [--no-pg]
        [--memory-rows 1500000] [--memory-only] [--memory-no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from asgi_lifespan import LifespanManager

from spp_shared.contracts.permissions import Role
from spp_shared.kit.db import Database
from spp_shared.kit.identity import GATEWAY_ISSUER, AssertionSigner, Principal, PrincipalKind
from spp_shared.kit.ids import new_ulid
from spp_shared.kit.keys import platform_keys_env, signing_key_env
from spp_shared.kit.migrations import upgrade
from spp_sites.app import create_app
from spp_sites.cli import MIGRATIONS
from spp_sites.geo import GeoReference
from spp_sites.seed import seed_networks
from spp_sites.settings import SitesSettings
from spp_sites.values import finish

NETWORKS = ["caf", "cpam", "france-travail", "urssaf", "dgfip", "msa", "assurance-retraite"]
KINDS = ["agence", "accueil", "point d'accueil", "centre des finances publiques", "antenne"]
HOURS = ["08:30 - 12:30 / 13:30 - 16:30", "09:00 - 12:00 / 14:00 - 17:00", "09:00 - 16:00", ""]
HEADER = [
    "network", "external_code", "name", "kind", "siret", "address_line", "postcode",
    "commune_code", "commune_name", "latitude", "longitude", "phone", "email", "website",
    "monday", "tuesday", "wednesday", "thursday", "friday",
]  # fmt: skip
IMPORT_PATH = "/v1/sites/import"
# The keys of the processes the bench starts (the sites app in-process too).
BENCH_KEYS = platform_keys_env(("gateway", "sites"))
os.environ.update(BENCH_KEYS)
GATEWAY = AssertionSigner(GATEWAY_ISSUER, BENCH_KEYS[signing_key_env("gateway")], setting="bench")
ADMIN = Principal(subject="bench", kind=PrincipalKind.bootstrap, roles=[Role.programme_admin])
CAF_KEY = Principal(
    subject="bench-caf", kind=PrincipalKind.api_key, roles=[Role.network_manager], network="caf"
)


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Realistic rows: real communes with their postcode and centroid, valid phones."""
    rng = random.Random(seed)
    geo = GeoReference.default()
    communes = [c for c in geo._communes.values() if c.type == "COM" and c.lat and c.postcode]
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(rows):
            c = rng.choice(communes)
            network = NETWORKS[i % len(NETWORKS)]
            hours = rng.choice(HOURS)
            out.writerow(
                [
                    network,
                    f"{network.upper()}-{i:07d}",
                    f"{network.upper()} {c.name} {i}",
                    rng.choice(KINDS),
                    "",
                    f"{rng.randint(1, 200)} rue de la République",
                    c.postcode,
                    c.code,
                    c.name,
                    f"{c.lat:.6f}",
                    f"{c.lon:.6f}",
                    f"01 {rng.randint(40, 89)} {rng.randint(10, 99)} {rng.randint(10, 99)} 00",
                    f"accueil{i}@{network}.fr",
                    f"https://www.{network}.fr/agences/{i}",
                    hours, hours, hours, hours, "09:00 - 12:00",
                ]
            )  # fmt: skip


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def stream_file(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(256 * 1024):
            yield chunk


async def seed(url: str) -> None:
    await asyncio.to_thread(upgrade, MIGRATIONS, url)
    db = Database(url)
    async with db.sessionmaker() as session:
        await seed_networks(session)
        await session.commit()
    await db.dispose()


async def import_over_http(url: str, path: Path) -> tuple[float, dict[str, Any]]:
    settings = SitesSettings(database_url=url, access_log=False, import_max_bytes=2**31)
    app = create_app(settings)
    headers = {
        "content-type": "text/csv",
        "x-spp-assertion": GATEWAY.sign(ADMIN, method="POST", path=IMPORT_PATH, ttl=3600),
    }
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            started = time.perf_counter()
            resp = await client.post(
                IMPORT_PATH, content=stream_file(path), headers=headers, timeout=None
            )
            elapsed = time.perf_counter() - started
    resp.raise_for_status()
    return elapsed, resp.json()


def raw_records(path: Path) -> list[dict[str, Any]]:
    """The rows as final column values (not timed: the raw path gets them for free)."""
    stamp = datetime.now(UTC)
    out = []
    with path.open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            values: dict[str, Any] = {
                "network_code": r["network"], "external_code": r["external_code"],
                "sp_code": None, "parent_sp_code": None, "name": r["name"], "kind": r["kind"],
                "level": "site", "siret": None, "address_line": r["address_line"],
                "address_complement": None, "postcode": r["postcode"],
                "commune_code": r["commune_code"], "commune_name": r["commune_name"],
                "departement_code": r["commune_code"][:2], "region_code": "11",
                "country": "France", "latitude": float(r["latitude"]),
                "longitude": float(r["longitude"]), "phone": "+33140000000",
                "email": r["email"], "website": r["website"], "appointment_url": None,
                "opening_hours": None, "accessibility": None, "status": "open",
                "sp_member_since": None,
            }  # fmt: skip
            finish(values)
            values.update(id=new_ulid(), created_at=stamp, updated_at=stamp, version=1)
            out.append(values)
    return out


def raw_sqlite(db_file: Path, records: list[dict[str, Any]]) -> float:
    conn = sqlite3.connect(db_file)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("DELETE FROM sites")
    conn.commit()
    cols = list(records[0])
    sql = f"INSERT INTO sites ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
    rows = [tuple(r[c] for c in cols) for r in records]
    started = time.perf_counter()
    conn.executemany(sql, rows)
    conn.commit()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


async def raw_postgres(dsn: str, records: list[dict[str, Any]]) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE sites")
        cols = list(records[0])
        rows = [tuple(r[c] for c in cols) for r in records]
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("sites", records=rows, columns=cols)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def scratch_pg(base: str, name: str, *, drop: bool = False) -> str:
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return base.rsplit("/", 1)[0] + "/" + name


def line(label: str, rows: int, seconds: float, extra: str = "") -> None:
    print(f"  {label:<34} {rows / seconds:>10,.0f} rows/s  ({seconds:6.2f} s){extra}")


async def ours(db_name: str, url: str, path: Path, rows: int) -> float:
    print(f"{db_name}:")
    await seed(url)
    elapsed, report = await import_over_http(url, path)
    assert report["created"] == rows, report
    assert report["rejected"] == 0, report
    line("import over HTTP (all created)", rows, elapsed, f"  peak RSS {peak_rss_mb():.0f} MB")
    again, report = await import_over_http(url, path)
    assert report["unchanged"] == rows, report
    line("re-import (all unchanged)", rows, again, f"  peak RSS {peak_rss_mb():.0f} MB")
    return elapsed


def compare(db_name: str, rows: int, elapsed: float, raw_seconds: float) -> None:
    print(f"{db_name}:")
    line("import over HTTP (all created)", rows, elapsed)
    line("raw SQL insert of the same rows", rows, raw_seconds)
    print(f"  ratio ours/raw: {raw_seconds / elapsed:.2f}")


# --- memory of a large import, in the service's own process ---------------------


def generate_lean(path: Path, rows: int, *, prefix: str = "CAF-") -> None:
    """One network's sites, key, name and postcode only: about 35 bytes a row."""
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("network,external_code,name,postcode\n")
        block = 100_000
        for start in range(0, rows, block):
            f.writelines(
                f"caf,{prefix}{i:07d},Caf accueil {i},{69001 + i % 9}\n"
                for i in range(start, min(start + block, rows))
            )


def proc_mb(pid: int, field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak so far) of a process, in MB (Linux)."""
    for text in Path(f"/proc/{pid}/status").read_text().splitlines():
        if text.startswith(field + ":"):
            return int(text.split()[1]) / 1024
    raise LookupError(field)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _file_chunks(path: Path) -> Any:
    with path.open("rb") as f:
        while chunk := f.read(256 * 1024):
            yield chunk


@contextmanager
def sites_process(url: str) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m spp_sites serve`` on ``url`` and a free port, answering /healthz;
    stopped on exit. The port is in ``proc.args``' last item."""
    port = _free_port()
    env = {
        **os.environ,
        "SPP_SITES_DATABASE_URL": url,
        "SPP_SITES_ACCESS_LOG": "false",
        "SPP_SITES_LOG_LEVEL": "warning",
    }
    cmd = [sys.executable, "-m", "spp_sites", "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz").raise_for_status()
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{' '.join(cmd)} did not start") from None
                time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


def base_url(proc: subprocess.Popen[bytes]) -> str:
    return f"http://127.0.0.1:{proc.args[-1]}"  # type: ignore[index]


def memory_run(url: str, path: Path, rows: int, *, write: bool) -> None:
    """Start the service on ``url``, import ``path`` once, print its RSS figures."""
    headers = {
        "content-type": "text/csv",
        "x-spp-assertion": GATEWAY.sign(CAF_KEY, method="POST", path=IMPORT_PATH, ttl=3600),
    }
    with sites_process(url) as proc, httpx.Client(base_url=base_url(proc), timeout=None) as client:
        warm = "network,external_code,name\n" + "".join(
            f"caf,WARM-{i},Caf {i}\n" for i in range(10)
        )
        params = {"dry_run": "true"}
        client.post(IMPORT_PATH, content=warm, headers=headers, params=params)
        time.sleep(1)
        idle = proc_mb(proc.pid, "VmRSS")
        started = time.perf_counter()
        resp = client.post(
            IMPORT_PATH,
            content=_file_chunks(path),
            headers=headers,
            params={} if write else params,
        )
        elapsed = time.perf_counter() - started
        resp.raise_for_status()
        report = resp.json()
        assert report["rejected"] == 0, report
        assert report["created"] == rows, report
        peak = proc_mb(proc.pid, "VmHWM")
        time.sleep(1)
        after = proc_mb(proc.pid, "VmRSS")
    label = "write" if write else "dry run"
    line(
        f"{label}, service process",
        rows,
        elapsed,
        f"  RSS idle {idle:.0f} MB, peak {peak:.0f} (+{peak - idle:.0f}),"
        f" after {after:.0f} (+{after - idle:.0f})",
    )


async def memory(tmp: str, rows: int, pg_base: str | None, *, write: bool) -> None:
    path = Path(tmp) / "lean.csv"
    generate_lean(path, rows)
    print(
        f"Memory of one import, {rows:,} rows, {path.stat().st_size / 1e6:.0f} MB CSV, "
        "a CAF network manager's key, the service in its own process:"
    )
    targets = [("SQLite", f"sqlite+aiosqlite:///{Path(tmp) / 'memory.db'}")]
    if pg_base:
        dsn = await scratch_pg(pg_base, "spp_import_memory_bench")
        targets.append(("PostgreSQL", dsn.replace("postgresql://", "postgresql+asyncpg://", 1)))
    try:
        for db_name, url in targets:
            print(f"{db_name}:")
            await seed(url)
            for writes in (False, True) if write else (False,):
                await asyncio.to_thread(memory_run, url, path, rows, write=writes)
    finally:
        if pg_base:
            await scratch_pg(pg_base, "spp_import_memory_bench", drop=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--pg", default="postgresql://root@127.0.0.1:5432/test")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--memory-rows", type=int, default=1_500_000, help="0: skip")
    parser.add_argument("--memory-only", action="store_true", help="only the memory figures")
    parser.add_argument("--memory-no-write", action="store_true", help="dry run only")
    args = parser.parse_args()
    rows = args.rows
    pg_base = None if args.no_pg else args.pg
    if args.memory_only:
        with tempfile.TemporaryDirectory(prefix="spp-import-bench-") as tmp:
            await memory(tmp, args.memory_rows, pg_base, write=not args.memory_no_write)
        return
    with tempfile.TemporaryDirectory(prefix="spp-import-bench-") as tmp:
        path = Path(tmp) / "sites.csv"
        started = time.perf_counter()
        generate(path, rows)
        size = path.stat().st_size / 1e6
        print(
            f"{rows:,} rows, {size:.1f} MB CSV (generated in "
            f"{time.perf_counter() - started:.1f} s); peak RSS before importing "
            f"{peak_rss_mb():.0f} MB"
        )
        db_file = Path(tmp) / "sites.db"
        lite = await ours("SQLite", f"sqlite+aiosqlite:///{db_file}", path, rows)
        dsn = ""
        if not args.no_pg:
            dsn = await scratch_pg(args.pg, "spp_import_bench")
        try:
            pg = 0.0
            if dsn:
                url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
                pg = await ours("PostgreSQL", url, path, rows)
            # Raw baselines last: they hold every row in memory, ours never does.
            print("Raw SQL beside ours (rows prepared in memory beforehand, not timed):")
            records = raw_records(path)
            compare("SQLite", rows, lite, raw_sqlite(db_file, records))
            if dsn:
                compare("PostgreSQL", rows, pg, await raw_postgres(dsn, records))
        finally:
            if dsn:
                await scratch_pg(args.pg, "spp_import_bench", drop=True)
    if args.memory_rows:
        with tempfile.TemporaryDirectory(prefix="spp-import-bench-") as tmp:
            await memory(tmp, args.memory_rows, pg_base, write=not args.memory_no_write)


if __name__ == "__main__":
    asyncio.run(main())

"""Export benchmark: the registry streamed by GET /v1/sites/export, memory against row count.

For SQLite and PostgreSQL each: a fresh, migrated database holding the
programme's SP+ structures export (14,763 rows, imported once), then the
same rows copied by SQL until the table holds ``--copies`` times as many
(new ids and codes). The sites service runs as its own process (``python -m
spp_sites serve``); the bench streams the export over HTTP as CSV and JSON
Lines at 1x and at ``--copies``x, and reads the process's RSS from /proc:
idle, peak (VmHWM) and after. On PostgreSQL it also times a raw ``COPY
(SELECT ...) TO STDOUT`` of the same table through asyncpg, as the ceiling.

    .venv/bin/python bench/export_bench.py [--copies 10] [--pg postgresql://...] [--no-pg]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import text

from spp_shared.kit.db import Database
from spp_sites.importer import import_file

sys.path.insert(0, str(Path(__file__).parent))
from import_bench import ADMIN, GATEWAY, base_url, proc_mb, scratch_pg, seed, sites_process

EXPORT_PATH = "/v1/sites/export"
# The programme's export, as the sites service ships it for its demo.
EXPORT = (
    Path(__file__).parents[1]
    / "services/sites/spp_sites/reference/demo/sp_plus_export-structures.csv"
)
_COPY_SITES = (
    "INSERT INTO sites (id, network_code, external_code, sp_code, parent_sp_code, parent_id, "
    "name, kind, level, siret, address_line, address_complement, postcode, commune_code, "
    "commune_name, departement_code, region_code, country, latitude, longitude, phone, email, "
    "website, appointment_url, opening_hours, accessibility, status, status_since, reopens_on, "
    "status_reason, sp_member_since, search_text, content_hash, created_at, updated_at, version) "
    "SELECT substr(id, 1, 24) || :k, network_code, substr(external_code, 1, 60) || :k, NULL, "
    "NULL, NULL, "
    "name, kind, level, siret, address_line, address_complement, postcode, commune_code, "
    "commune_name, departement_code, region_code, country, latitude, longitude, phone, email, "
    "website, appointment_url, opening_hours, accessibility, status, status_since, reopens_on, "
    "status_reason, sp_member_since, search_text, content_hash, created_at, updated_at, version "
    "FROM sites WHERE length(id) = 26 AND substr(id, 25, 1) <> '~'"
)


async def load(url: str, copies: int) -> int:
    await seed(url)
    db = Database(url)
    try:
        report = await import_file(db, EXPORT, ADMIN)
        assert report.rejected == 0, report
        async with db.sessionmaker() as session:
            # Ids end with "~k" (k = 1..copies-1): new ids, new external codes.
            for k in range(1, copies):
                await session.execute(text(_COPY_SITES), {"k": f"~{k}"})
            await session.commit()
            return int((await session.execute(text("SELECT count(*) FROM sites"))).scalar_one())
    finally:
        await db.dispose()


def stream_export(client: httpx.Client, params: dict[str, str]) -> tuple[int, int, float]:
    started = time.perf_counter()
    size = lines = 0
    with client.stream("GET", EXPORT_PATH, params=params) as resp:
        resp.raise_for_status()
        for chunk in resp.iter_bytes():
            size += len(chunk)
            lines += chunk.count(b"\n")
    return size, lines, time.perf_counter() - started


def run_service(url: str, scales: list[tuple[str, dict[str, str]]]) -> None:
    # Every call of the run is this one GET: one assertion, signed for it.
    headers = {"x-spp-assertion": GATEWAY.sign(ADMIN, method="GET", path=EXPORT_PATH, ttl=3600)}
    with (
        sites_process(url) as proc,
        httpx.Client(base_url=base_url(proc), timeout=None, headers=headers) as client,
    ):
        stream_export(client, {"format": "csv", "network": "ditp"})  # warm-up
        time.sleep(1)
        for label, params in scales:
            idle = proc_mb(proc.pid, "VmRSS")
            size, lines, seconds = stream_export(client, params)
            peak = proc_mb(proc.pid, "VmHWM")
            count = lines - (params.get("format") == "csv")
            print(
                f"  {label:<28} {count:>9,} rows {size / 1e6:7.1f} MB "
                f"{count / seconds:>10,.0f} rows/s  RSS idle {idle:.0f} MB, "
                f"peak so far {peak:.0f} (+{peak - idle:.0f})"
            )


async def raw_copy(dsn: str) -> tuple[int, float]:
    conn = await asyncpg.connect(dsn)
    size = 0

    async def sink(data: bytes) -> None:
        nonlocal size
        size += len(data)

    try:
        started = time.perf_counter()
        await conn.copy_from_query(
            "SELECT * FROM sites ORDER BY id", output=sink, format="csv", header=True
        )
        return size, time.perf_counter() - started
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--pg", default="postgresql://root@127.0.0.1:5432/test")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spp-export-bench-") as tmp:
        targets = [("SQLite", f"sqlite+aiosqlite:///{Path(tmp) / 'export.db'}", "")]
        if not args.no_pg:
            dsn = await scratch_pg(args.pg, "spp_export_bench")
            targets.append(
                ("PostgreSQL", dsn.replace("postgresql://", "postgresql+asyncpg://", 1), dsn)
            )
        try:
            for name, url, raw_dsn in targets:
                rows = await load(url, args.copies)
                print(f"{name}: {rows:,} sites ({args.copies} x the SP+ export)")
                # Smallest first: the peak (VmHWM) only grows, so a flat peak
                # from one network to the whole table is memory that does not
                # grow with the rows.
                scales = [
                    ("csv, one network (cpam)", {"format": "csv", "network": "cpam"}),
                    ("csv, all", {"format": "csv"}),
                    ("jsonl, all", {"format": "jsonl"}),
                ]
                await asyncio.to_thread(run_service, url, scales)
                if raw_dsn:
                    size, seconds = await raw_copy(raw_dsn)
                    print(
                        f"  {'raw COPY TO STDOUT (asyncpg)':<28} {rows:>9,} rows "
                        f"{size / 1e6:7.1f} MB {rows / seconds:>10,.0f} rows/s"
                    )
        finally:
            if not args.no_pg:
                await scratch_pg(args.pg, "spp_export_bench", drop=True)


if __name__ == "__main__":
    asyncio.run(main())

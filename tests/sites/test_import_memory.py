"""An import's memory is bounded by its batch, not by its file (issue 7, security review).

A 1.5 million row file held every key it had seen (for duplicate detection)
until its end: hundreds of MB. Here the same import runs on a small and a
ten times larger file; the Python memory it allocates at its peak (tracemalloc,
so not timed and not at the mercy of the allocator) must not grow with the
rows. bench/import_bench.py measures the process's RSS on 1.5 million rows.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from spp_shared.contracts.permissions import Role
from spp_shared.kit.db import Database
from spp_shared.kit.identity import Principal, PrincipalKind
from spp_shared.kit.ingest import Container
from spp_sites.importer import run_import

pytestmark = pytest.mark.anyio

CAF = Principal(
    subject="key-caf", kind=PrincipalKind.api_key, roles=[Role.network_manager], network="caf"
)
SMALL, LARGE = 10_000, 100_000
# What may differ between the two peaks: noise, far below the 20 MB that
# 90,000 more keys cost when they were kept in Python.
SLACK = 3 * 1024 * 1024


def new_sites(i: int) -> str:
    return f"caf,CAF-{i:07d},Caf accueil {i},{69001 + i % 9}"


def unknown_networks(i: int) -> str:
    # Each row names a network nobody knows: every row rejected, every name new.
    return f"reseau-inconnu-{i:07d},X{i},Accueil {i},69001"


async def peak_bytes(db: Database, path: Path) -> tuple[int, int]:
    """The import's peak of traced Python memory, and its row count."""
    tracemalloc.start()
    try:
        report = await run_import(db, path, Container.csv, CAF, dry_run=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, report.rows


@pytest.mark.parametrize("row", [new_sites, unknown_networks], ids=["new-sites", "unknown-nets"])
async def test_import_memory_does_not_grow_with_the_rows(
    db: Database, tmp_path: Path, row: Callable[[int], str]
) -> None:
    files = {}
    for n in (100, SMALL, LARGE):
        files[n] = tmp_path / f"{n}.csv"
        with files[n].open("w") as f:
            f.write("network,external_code,name,postcode\n")
            f.writelines(row(i) + "\n" for i in range(n))
    await peak_bytes(db, files[100])  # warm-up: caches, prepared statements
    small, rows_small = await peak_bytes(db, files[SMALL])
    large, rows_large = await peak_bytes(db, files[LARGE])
    assert (rows_small, rows_large) == (SMALL, LARGE)
    assert large - small < SLACK, (
        f"peak {small / 1e6:.1f} MB for {SMALL:,} rows, {large / 1e6:.1f} MB for {LARGE:,}"
    )

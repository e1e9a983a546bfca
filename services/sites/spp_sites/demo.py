"""Demo data for `make run`: the programme's real structures and France services."""

from __future__ import annotations

import asyncio
from pathlib import Path

from spp_shared.contracts.permissions import Role
from spp_shared.kit.db import Database
from spp_shared.kit.identity import Principal, PrincipalKind
from spp_sites import repository as repo
from spp_sites.importer import import_file

DEMO_DIR = Path(__file__).parent / "reference" / "demo"
DEMO_FILES = (
    "sp_plus_export-structures.csv",
    "france_services_liste-fs-20240801.csv",
)
SEEDER = Principal(subject="demo-seed", kind=PrincipalKind.service, roles=[Role.programme_admin])


async def seed_demo(url: str) -> None:
    """Import the demo files once; a registry that already has sites is left alone."""
    db = Database(url)
    try:
        async with db.sessionmaker() as session:
            if await repo.count_sites(session) > 0:
                print("demo data: the registry already has sites; nothing imported")
                return
        for name in DEMO_FILES:
            report = await import_file(db, DEMO_DIR / name, SEEDER, keep_valid=True)
            print(
                f"demo data: {name}: {report.created} created, {report.updated} updated, "
                f"{report.rejected} rejected, {report.warnings_total} warnings",
                flush=True,
            )
    finally:
        await db.dispose()


def main(url: str) -> None:
    asyncio.run(seed_demo(url))

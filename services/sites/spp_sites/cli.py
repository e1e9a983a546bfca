"""Command line of the sites service: ``python -m spp_sites {serve,migrate}``."""

from __future__ import annotations

from pathlib import Path

from spp_shared.kit.cli import serve_main
from spp_shared.kit.migrations import migrate_and_seed
from spp_sites.demo import main as seed_demo
from spp_sites.seed import seed_networks
from spp_sites.settings import SitesSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate() -> None:
    migrate_and_seed(MIGRATIONS, SitesSettings().database_url, seed_networks)


def main(argv: list[str] | None = None) -> None:
    serve_main(
        "spp_sites",
        "spp_sites.app:create_app",
        default_port=8001,
        migrate=migrate,
        commands={
            "seed-demo": (
                "import the demo structures and France services (once)",
                lambda: seed_demo(SitesSettings().database_url),
            )
        },
        argv=argv,
    )

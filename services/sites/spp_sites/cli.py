"""Command line of the sites service: ``python -m spp_sites <command>`` (``--help``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from spp_shared.kit.cli import Command, background_commands, serve_main
from spp_shared.kit.migrations import migrate_and_seed
from spp_sites.demo import main as seed_demo
from spp_sites.importer.jobs import import_handlers, import_timeouts
from spp_sites.models import idempotency_keys
from spp_sites.seed import seed_networks
from spp_sites.settings import SitesSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate() -> None:
    migrate_and_seed(MIGRATIONS, SitesSettings().database_url.get_secret_value(), seed_networks)


def demo(_: argparse.Namespace) -> int:
    seed_demo(SitesSettings().database_url.get_secret_value())
    return 0


def main(argv: list[str] | None = None) -> None:
    serve_main(
        "spp_sites",
        "spp_sites.app:create_app",
        default_port=8001,
        migrate=migrate,
        commands={
            **background_commands(
                SitesSettings,
                handlers=import_handlers,
                job_timeouts=import_timeouts,
                idempotency_keys=idempotency_keys,
            ),
            "seed-demo": Command("import the demo structures and France services (once)", demo),
        },
        argv=argv,
    )

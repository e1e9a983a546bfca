"""Command line of the labelling service: ``python -m spp_labelling <command>`` (``--help``)."""

from __future__ import annotations

from pathlib import Path

from spp_labelling.settings import LabellingSettings
from spp_shared.kit.cli import background_commands, serve_main
from spp_shared.kit.migrations import migrate_and_seed

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate() -> None:
    migrate_and_seed(MIGRATIONS, LabellingSettings().database_url.get_secret_value())


def main(argv: list[str] | None = None) -> None:
    serve_main(
        "spp_labelling",
        "spp_labelling.app:create_app",
        default_port=8004,
        migrate=migrate,
        commands=background_commands(LabellingSettings),
        argv=argv,
    )

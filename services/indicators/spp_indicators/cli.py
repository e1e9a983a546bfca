"""Command line of the indicators service: ``python -m spp_indicators <command>`` (``--help``)."""

from __future__ import annotations

from pathlib import Path

from spp_indicators.seed import seed_commitments
from spp_indicators.settings import IndicatorsSettings
from spp_shared.kit.cli import background_commands, serve_main
from spp_shared.kit.migrations import migrate_and_seed

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate() -> None:
    migrate_and_seed(
        MIGRATIONS, IndicatorsSettings().database_url.get_secret_value(), seed_commitments
    )


def main(argv: list[str] | None = None) -> None:
    serve_main(
        "spp_indicators",
        "spp_indicators.app:create_app",
        default_port=8003,
        migrate=migrate,
        commands=background_commands(IndicatorsSettings),
        argv=argv,
    )

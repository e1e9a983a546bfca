"""Command line of the feedback service: ``python -m spp_feedback <command>`` (``--help``)."""

from __future__ import annotations

from pathlib import Path

from spp_feedback.settings import FeedbackSettings
from spp_shared.kit.cli import background_commands, serve_main
from spp_shared.kit.migrations import migrate_and_seed

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate() -> None:
    migrate_and_seed(MIGRATIONS, FeedbackSettings().database_url.get_secret_value())


def main(argv: list[str] | None = None) -> None:
    serve_main(
        "spp_feedback",
        "spp_feedback.app:create_app",
        default_port=8002,
        migrate=migrate,
        commands=background_commands(FeedbackSettings),
        argv=argv,
    )

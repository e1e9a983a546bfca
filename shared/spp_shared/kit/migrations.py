"""Run a service's Alembic history programmatically (make migrate, make run, tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncSession

from spp_shared.kit.db import Database, ensure_sqlite_dir


def alembic_config(migrations_dir: Path, database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    # '%' must be escaped for ConfigParser (URL-encoded passwords contain it).
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(migrations_dir: Path, database_url: str, revision: str = "head") -> None:
    ensure_sqlite_dir(database_url)
    command.upgrade(alembic_config(migrations_dir, database_url), revision)


def downgrade(migrations_dir: Path, database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(migrations_dir, database_url), revision)


def migrate_and_seed(
    migrations_dir: Path,
    database_url: str,
    seed: Callable[[AsyncSession], Awaitable[object]] | None = None,
) -> None:
    """Apply the service's migrations, then load its reference data (idempotent)."""
    upgrade(migrations_dir, database_url)
    if seed is None:
        return

    async def run_seed() -> None:
        db = Database(database_url)
        try:
            async with db.sessionmaker() as session, session.begin():
                await seed(session)
        finally:
            await db.dispose()

    asyncio.run(run_seed())

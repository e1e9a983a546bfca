"""Every service's Alembic history: one head, agrees with the models, round-trips."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from spp_shared.kit.migrations import alembic_config, downgrade, upgrade

SERVICES = ["sites", "feedback", "indicators", "labelling", "gateway"]
# Where each names its migrations folder (the gateway has no cli module).
_MIGRATIONS_MODULE = {"gateway": "spp_gateway.models"}


def migrations_dir(service: str) -> Path:
    return import_module(_MIGRATIONS_MODULE.get(service, f"spp_{service}.cli")).MIGRATIONS


@pytest.mark.parametrize("service", SERVICES)
def test_history_has_one_head(service: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(migrations_dir(service), "sqlite://"))
    assert len(script.get_heads()) == 1


@pytest.mark.parametrize("service", SERVICES)
def test_upgrade_check_downgrade_upgrade(
    service: str, fresh_database_url: Callable[[str], str]
) -> None:
    url = fresh_database_url(service)
    path = migrations_dir(service)
    upgrade(path, url)
    # Raises if the models declare something no migration creates.
    command.check(alembic_config(path, url))
    downgrade(path, url)
    upgrade(path, url)
    command.check(alembic_config(path, url))

"""The labelling service (filled by later issues; see ARCHITECTURE.md)."""

from __future__ import annotations

from fastapi import FastAPI

from spp_labelling.settings import LabellingSettings
from spp_shared.kit.app import create_service_app
from spp_shared.kit.db import Database


def create_app(
    settings: LabellingSettings | None = None, *, database: Database | None = None
) -> FastAPI:
    return create_service_app(
        settings or LabellingSettings(),
        title="SP+ labelling",
        description=(
            "The SP+ label: référentiel, applications, audits, decisions and the public registry."
        ),
        database=database,
    )

"""The indicators service: catalogue, ingestion, publication, results, open data."""

from __future__ import annotations

from fastapi import FastAPI

from spp_indicators.routes import TAGS, router
from spp_indicators.settings import IndicatorsSettings
from spp_shared.kit.app import create_service_app
from spp_shared.kit.db import Database


def create_app(
    settings: IndicatorsSettings | None = None, *, database: Database | None = None
) -> FastAPI:
    return create_service_app(
        settings or IndicatorsSettings(),
        title="SP+ indicators",
        description=(
            "The indicator catalogue tied to the eight commitments, bulk ingestion, "
            "publication, results and open data."
        ),
        routers=[router],
        database=database,
        tags=TAGS,
    )

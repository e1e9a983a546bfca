"""The sites service: the registry of networks and the sites that receive the public."""

from __future__ import annotations

from fastapi import FastAPI

from spp_shared.kit.app import create_service_app
from spp_shared.kit.db import Database
from spp_sites.routes import TAGS, router
from spp_sites.settings import SitesSettings


def create_app(
    settings: SitesSettings | None = None, *, database: Database | None = None
) -> FastAPI:
    settings = settings or SitesSettings()
    return create_service_app(
        settings,
        title="SP+ sites",
        description="Networks and the sites that receive the public (the SP+ registry).",
        routers=[router],
        database=database,
        tags=TAGS,
    )

"""What an app is handed: an existing Database (kept by its owner) and its
settings, typed, through SettingsDep."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI, Request
from pydantic_settings import BaseSettings

from spp_shared.kit.db import Database
from spp_shared.kit.settings import settings_dependency
from spp_sites.app import create_app
from spp_sites.settings import SettingsDep, SitesSettings
from tests.support import ServiceDB, serve_asgi

pytestmark = pytest.mark.anyio


async def test_an_app_uses_the_database_it_is_handed_and_leaves_it_open(
    sites_app: FastAPI, sites_database: Database
) -> None:
    assert sites_app.state.db is sites_database
    async with serve_asgi(sites_app) as client:
        assert (await client.get("/readyz")).status_code == 200
    # Not disposed at shutdown: the pool still holds the connection readyz used.
    assert sites_database.engine.pool.checkedin() >= 1


async def test_an_app_disposes_of_the_database_it_made(sites_db: ServiceDB) -> None:
    app = create_app(SitesSettings(database_url=sites_db.url, access_log=False))
    async with serve_asgi(app) as client:
        assert (await client.get("/readyz")).status_code == 200
        assert app.state.db.engine.pool.checkedin() >= 1
    assert app.state.db.engine.pool.checkedin() == 0


class OtherSettings(BaseSettings):
    pass


async def test_routes_get_the_app_s_settings_typed(sites_app: FastAPI) -> None:
    router = APIRouter()

    @router.get("/limit")
    async def limit(settings: SettingsDep) -> int:
        return settings.lookup_max_items

    sites_app.include_router(router)
    sites_app.state.settings.lookup_max_items = 7
    async with serve_asgi(sites_app) as client:
        assert (await client.get("/limit")).json() == 7


async def test_settings_of_another_class_are_refused(sites_app: FastAPI) -> None:
    request = Request({"type": "http", "app": sites_app})
    assert isinstance(await settings_dependency(SitesSettings)(request), SitesSettings)
    with pytest.raises(TypeError, match="SitesSettings, not OtherSettings"):
        await settings_dependency(OtherSettings)(request)

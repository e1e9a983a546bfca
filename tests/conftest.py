"""Fixtures shared by the whole suite.

Every service test runs against a real database: a SQLite file by default,
PostgreSQL when ``SPP_TEST_DATABASE_URL`` is set (for instance
``postgresql+asyncpg://root@127.0.0.1:5432/test``). Each service gets its
own database, migrated once per session with its real Alembic history, and
one :class:`Database` (engines and pools) for the session, which each test
empties (plus the reference data) and hands to the app it builds.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import MetaData
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from spp_shared.contracts.permissions import Role
from spp_shared.kit.db import Database
from spp_shared.kit.identity import Principal, PrincipalKind
from spp_shared.kit.migrations import upgrade
from tests.support import PG_URL_ENV, TEST_KEYS_ENV, ServiceDB, assertion_headers, serve_asgi

# Every app and process the suite starts reads its keys from the environment.
os.environ.update(TEST_KEYS_ENV)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def _pg_base_url() -> str | None:
    return os.environ.get(PG_URL_ENV) or None


async def _recreate_pg_database(base_url: str, name: str) -> str:
    url = make_url(base_url)
    conn = await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database or "postgres",
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url.set(database=name).render_as_string(hide_password=False)


async def _drop_pg_database(url_text: str) -> None:
    url = make_url(url_text)
    conn = await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database="postgres",
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await conn.close()


def drop_database(url: str) -> None:
    """Drop a PostgreSQL test database (SQLite files go with pytest's tmp dirs)."""
    if make_url(url).get_backend_name() == "postgresql":
        asyncio.run(_drop_pg_database(url))


def service_database_url(service: str, tmp_dir: Path) -> str:
    """A fresh, empty database for one service for this test session."""
    base = _pg_base_url()
    if base is None:
        return f"sqlite+aiosqlite:///{tmp_dir / f'{service}.db'}"
    name = f"{make_url(base).database or 'test'}_spp_{service}_{os.getpid()}"
    return asyncio.run(_recreate_pg_database(base, name))


def migrated_db(
    service: str,
    migrations: Path,
    metadata: MetaData,
    tmp_dir: Path,
    seed: Callable[[AsyncSession], Awaitable[Any]] | None = None,
) -> ServiceDB:
    url = service_database_url(service, tmp_dir)
    upgrade(migrations, url)
    return ServiceDB(url=url, metadata=metadata, seed=seed)


ADMIN = Principal(subject="test-admin", kind=PrincipalKind.bootstrap, roles=[Role.programme_admin])


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return assertion_headers(ADMIN)


@pytest.fixture
def manager_headers() -> Callable[[str], dict[str, str]]:
    def make(network: str) -> dict[str, str]:
        return assertion_headers(
            Principal(
                subject=f"key-{network}",
                kind=PrincipalKind.api_key,
                roles=[Role.network_manager],
                network=network,
            )
        )

    return make


# --- sites -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def sites_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceDB]:
    from spp_sites.cli import MIGRATIONS
    from spp_sites.models import Base
    from spp_sites.seed import seed_networks

    db = migrated_db(
        "sites", MIGRATIONS, Base.metadata, tmp_path_factory.mktemp("sites"), seed_networks
    )
    yield db
    drop_database(db.url)


@pytest.fixture(scope="session")
async def sites_session_database(sites_db: ServiceDB) -> AsyncIterator[Database]:
    db = Database(sites_db.url)
    yield db
    await db.dispose()


@pytest.fixture
async def sites_database(sites_db: ServiceDB, sites_session_database: Database) -> Database:
    """The sites database, emptied, as the importer and the app take it."""
    await sites_db.reset(sites_session_database)
    return sites_session_database


def sites_settings(sites_db: ServiceDB) -> Any:
    from spp_sites.settings import SitesSettings

    return SitesSettings(database_url=sites_db.url, log_json=True, access_log=False)


@pytest.fixture
def sites_app(sites_db: ServiceDB, sites_database: Database) -> FastAPI:
    from spp_sites.app import create_app

    return create_app(sites_settings(sites_db), database=sites_database)


@pytest.fixture
def served_sites_app(sites_db: ServiceDB, sites_database: Database) -> FastAPI:
    """The sites app for a server in another thread, on an emptied database.

    It makes its own :class:`Database`: that thread runs another event loop,
    where the session's connections cannot be used.
    """
    from spp_sites.app import create_app

    return create_app(sites_settings(sites_db))


@pytest.fixture
async def sites_client(sites_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_asgi(sites_app) as client:
        yield client


@pytest.fixture
def fresh_database_url(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Factory: an empty database (SQLite file or PostgreSQL database) for a name."""
    made: list[str] = []

    def make(name: str) -> str:
        made.append(service_database_url(f"scratch_{name}", tmp_path))
        return made[-1]

    yield make
    for url in made:
        drop_database(url)


# --- feedback, indicators, labelling ------------------------------------------------


def _shell_service_db(name: str, tmp_path_factory: pytest.TempPathFactory) -> ServiceDB:
    """A service's database migrated with its real history, with its reference
    data, as ``python -m spp_<name> migrate`` leaves it."""
    from importlib import import_module

    seed = {"indicators": ("spp_indicators.seed", "seed_commitments")}.get(name)
    db = migrated_db(
        name,
        import_module(f"spp_{name}.cli").MIGRATIONS,
        import_module(f"spp_{name}.models").Base.metadata,
        tmp_path_factory.mktemp(name),
        getattr(import_module(seed[0]), seed[1]) if seed else None,
    )
    asyncio.run(db.reset())
    return db


def _shell_service_db_fixture(name: str) -> Any:
    @pytest.fixture(scope="session", name=f"{name}_db")
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceDB]:
        db = _shell_service_db(name, tmp_path_factory)
        yield db
        drop_database(db.url)

    return fixture


feedback_db = _shell_service_db_fixture("feedback")
indicators_db = _shell_service_db_fixture("indicators")
labelling_db = _shell_service_db_fixture("labelling")


# --- gateway -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def gateway_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceDB]:
    """The gateway's database (SQLite, or PostgreSQL with SPP_TEST_DATABASE_URL),
    migrated once per session with its real Alembic history."""
    from spp_gateway.models import MIGRATIONS, Base

    db = migrated_db("gateway", MIGRATIONS, Base.metadata, tmp_path_factory.mktemp("gateway"))
    yield db
    drop_database(db.url)


@pytest.fixture(scope="session")
async def gateway_session_database(gateway_db: ServiceDB) -> AsyncIterator[Database]:
    db = Database(gateway_db.url, pool_size=2)
    yield db
    await db.dispose()


@pytest.fixture
async def gateway_database(gateway_db: ServiceDB, gateway_session_database: Database) -> Database:
    """Empty tables and a :class:`Database` on them for one test."""
    await gateway_db.reset(gateway_session_database)
    return gateway_session_database

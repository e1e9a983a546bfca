"""The five apps, each built as its process builds it and served over HTTP.

Each app is made by its own ``create_app()`` with no arguments, reading its
settings from the environment as ``python -m spp_<name> serve`` does, and
served by uvicorn on a local port (a thread each), once per session. The
services run on the suite's migrated databases (SQLite, or PostgreSQL with
SPP_TEST_DATABASE_URL); the gateway is in front of those four services and
on its own database. Conformance calls only read, so nothing is reset.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Mapping
from importlib import import_module
from pathlib import Path

import pytest
from starlette.types import ASGIApp

from spp_gateway.server import head_timeout_protocol
from spp_gateway.settings import GatewaySettings
from tests.conformance.calls import SITES_IMPORT_MAX_BYTES
from tests.conformance.harness import (
    APPS,
    BOOTSTRAP_TOKEN,
    GATEWAY,
    OPS_TOKEN,
    SERVICES,
    App,
    Instance,
)
from tests.support import ServedApp, ServiceDB


def unusable_database_urls(folder: Path, closed_port: int) -> dict[Instance, str]:
    """Database URLs an app cannot use: a SQLite "file" that is a folder (it
    cannot be opened), a PostgreSQL port where nothing listens, and a SQLite
    file that does not exist yet (opened, empty: no schema)."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "unreachable-sqlite": f"sqlite+aiosqlite:///{folder}",
        "empty-sqlite": f"sqlite+aiosqlite:///{folder / 'empty.db'}",
        "unreachable-postgresql": f"postgresql+asyncpg://spp@127.0.0.1:{closed_port}/spp",
    }


def _built(environment: Mapping[str, str], make: Callable[[], ASGIApp]) -> ASGIApp:
    """``make()`` with ``environment`` set while it reads its settings."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        return make()


def _service_factory(name: str, database_url: str) -> Callable[[], ServedApp]:
    prefix = f"SPP_{name.upper()}_"
    environment = {prefix + "DATABASE_URL": database_url, prefix + "ACCESS_LOG": "false"}
    if name == "sites":
        environment[prefix + "IMPORT_MAX_BYTES"] = str(SITES_IMPORT_MAX_BYTES)
    create_app = import_module(f"spp_{name}.app").create_app

    def serve() -> ServedApp:
        # As `python -m spp_<name> serve` (kit/cli.py): no Server header.
        return ServedApp(_built(environment, create_app), server_header=False).start()

    return serve


def _gateway_factory(
    database_url: str, upstreams: Callable[[], Mapping[str, str]]
) -> Callable[[], ServedApp]:
    from spp_gateway.app import create_app

    def serve() -> ServedApp:
        environment = {
            "SPP_GATEWAY_DATABASE_URL": database_url,
            "SPP_BOOTSTRAP_TOKEN": BOOTSTRAP_TOKEN,
            "SPP_GATEWAY_METRICS_TOKEN": OPS_TOKEN,
            "SPP_GATEWAY_ACCESS_LOG": "false",
            **{f"SPP_GATEWAY_{n.upper()}_URL": url for n, url in upstreams().items()},
        }
        settings = _built(environment, GatewaySettings)
        assert isinstance(settings, GatewaySettings)
        # As `python -m spp_gateway` (its __main__): its own HTTP protocol.
        http = head_timeout_protocol(
            settings.header_timeout, settings.max_header_bytes + settings.max_url_bytes + 1024
        )
        return ServedApp(
            _built(environment, create_app), server_header=False, date_header=True, http=http
        ).start()

    return serve


@pytest.fixture(scope="session")
def conformance_apps(
    sites_db: ServiceDB,
    feedback_db: ServiceDB,
    indicators_db: ServiceDB,
    labelling_db: ServiceDB,
    gateway_db: ServiceDB,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, App]]:
    databases = {
        "sites": sites_db,
        "feedback": feedback_db,
        "indicators": indicators_db,
        "labelling": labelling_db,
        GATEWAY: gateway_db,
    }
    # Bound and never listening: connections are refused, and no other
    # process on the machine can take the port while the session runs.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    unusable = unusable_database_urls(tmp_path_factory.mktemp("unusable"), closed.getsockname()[1])
    apps: dict[str, App] = {}

    def upstream_urls() -> dict[str, str]:
        return {name: apps[name].url("main") for name in SERVICES}

    for name in SERVICES:
        urls: dict[Instance, str] = {"main": databases[name].url, **unusable}
        apps[name] = App(name, {i: _service_factory(name, url) for i, url in urls.items()})
    gateway_urls: dict[Instance, str] = {"main": gateway_db.url, **unusable}
    apps[GATEWAY] = App(
        GATEWAY, {i: _gateway_factory(url, upstream_urls) for i, url in gateway_urls.items()}
    )
    yield apps
    for name in APPS:  # all at once: each takes a moment to stop
        apps[name].stop_serving()
    for name in APPS:
        apps[name].close()
    closed.close()


@pytest.fixture(params=APPS)
def app(request: pytest.FixtureRequest, conformance_apps: dict[str, App]) -> App:
    """Each of the five apps in turn."""
    return conformance_apps[request.param]


@pytest.fixture(params=SERVICES)
def service(request: pytest.FixtureRequest, conformance_apps: dict[str, App]) -> App:
    """Each of the four services in turn."""
    return conformance_apps[request.param]

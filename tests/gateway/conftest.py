"""Real servers for the gateway tests: uvicorn in background threads
(:class:`tests.support.ServedApp`). The upstreams are small FastAPI apps that echo
what reached them, so tests assert on what the gateway actually forwarded.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from spp_gateway import GatewaySettings, create_app
from spp_shared.contracts.permissions import Role
from spp_shared.kit.db import Database
from spp_shared.kit.identity import ANONYMOUS, PRINCIPAL_STATE, Principal, PrincipalKind
from tests.support import ServedApp as ServedApp
from tests.support import ServiceDB
from tests.support import dead_url as dead_url

BOOTSTRAP_TOKEN = "test-bootstrap-token-0123456789abcdef"
METRICS_TOKEN = "test-metrics-token-0123456789abcdef0"
# What the operations tooling sends for /metrics and the details of /readyz.
OPS = {"Authorization": f"Bearer {METRICS_TOKEN}"}
SERVICES = ("sites", "feedback", "indicators", "labelling")
CHUNK = 64 * 1024


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def pattern_chunk(index: int) -> bytes:
    """Deterministic 64 KiB chunk ``index`` of a generated large body."""
    return hashlib.sha256(str(index).encode()).digest() * (CHUNK // 32)


def pattern_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for i in range(size // CHUNK):
        digest.update(pattern_chunk(i))
    return digest.hexdigest()


# --- upstream apps -------------------------------------------------------------


class SitesModels:
    class Site(BaseModel):
        id: str
        name: str


class FeedbackModels:
    # A site as feedback shows it: its own name, so no clash with the sites'
    # "Site" in the merged OpenAPI (a clash is refused: test_ops).
    class ExperienceSite(BaseModel):
        id: str
        label: str
        network: str


class Entry(BaseModel):
    type: str
    title: str
    status: int


def make_upstream(service: str) -> FastAPI:
    app = FastAPI(title=f"spp {service}")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ok"}

    if service == "sites":

        @app.get("/v1/sites/{site_id}", operation_id="get_site", tags=["sites"])
        async def get_site(site_id: str) -> SitesModels.Site:
            return SitesModels.Site(id=site_id, name="CAF Lyon")

        @app.get("/v1/networks", operation_id="list_networks", tags=["networks"])
        async def list_networks() -> list[Entry]:
            return []

    if service == "feedback":

        @app.get("/v1/experiences/{exp_id}/site", operation_id="get_experience_site")
        async def experience_site(exp_id: str) -> FeedbackModels.ExperienceSite:
            return FeedbackModels.ExperienceSite(id=exp_id, label="x", network="caf")

        @app.get("/v1/ratings", operation_id="list_ratings", tags=["ratings"])
        async def list_ratings() -> list[Entry]:
            return []

    prefix = {
        "sites": "/v1/sites",
        "feedback": "/v1/experiences",
        "indicators": "/v1/indicators",
        "labelling": "/v1/labels",
    }[service]

    @app.get(prefix + "/test/slow", include_in_schema=False)
    async def slow() -> dict[str, str]:
        await asyncio.sleep(3)
        return {"status": "late"}

    # Bulk paths are exactly /v1/<resource>/import: the slow one is the
    # indicators', the others echo what they read.
    @app.post("/v1/indicators/import", include_in_schema=False)
    async def slow_import() -> dict[str, str]:
        await asyncio.sleep(1.5)  # longer than the test gateway's read timeout
        return {"status": "imported"}

    @app.get(prefix + "/test/hop", include_in_schema=False)
    async def hop() -> Response:
        return Response(
            b"hop",
            headers={
                "Connection": "X-Private, keep-alive",
                "X-Private": "secret",
                "Keep-Alive": "timeout=5",
                "Proxy-Authenticate": "Basic",
                "X-Kept": "yes",
            },
        )

    @app.get(prefix + "/test/download", include_in_schema=False)
    async def download(size: int) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(size // CHUNK):
                yield pattern_chunk(i)

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    @app.api_route(
        "/{path:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    async def echo(request: Request, path: str) -> JSONResponse:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
        return JSONResponse(
            {
                "service": service,
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "headers": [[k, v] for k, v in request.headers.items()],
                "body_size": size,
                "body_sha256": digest.hexdigest(),
            }
        )

    return app


@pytest.fixture(scope="session")
def upstreams() -> Iterator[dict[str, ServedApp]]:
    served = {name: ServedApp(make_upstream(name)).start() for name in SERVICES}
    yield served
    for app in served.values():
        app.stop()


BODY_GROUPS = ("default", "read", "write", "submission", "bulk", "admin")


def gateway_settings(urls: dict[str, str], **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "sites_url": urls["sites"],
        "feedback_url": urls["feedback"],
        "indicators_url": urls["indicators"],
        "labelling_url": urls["labelling"],
        "bootstrap_token": BOOTSTRAP_TOKEN,
        "metrics_token": METRICS_TOKEN,
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "readiness_timeout": 1.0,
        "log_json": True,
        # The proxy tests are about streaming and failures, not about the
        # limits (tests/gateway/test_access.py covers those).
        "rate_limits_enabled": False,
        **{f"body_limit_{g}": 1 << 30 for g in BODY_GROUPS},
    }
    values.update(overrides)
    return GatewaySettings(**values)


def serve_gateway(settings: GatewaySettings) -> ServedApp:
    return ServedApp(create_app(settings), server_header=False).start()


@pytest.fixture(scope="session")
def gateway(upstreams: dict[str, ServedApp], gateway_db: ServiceDB) -> Iterator[ServedApp]:
    served = serve_gateway(
        gateway_settings({n: u.url for n, u in upstreams.items()}, database_url=gateway_db.url)
    )
    yield served
    served.stop()


# --- the gateway's own database and its admin router ----------------------------------


PRINCIPAL_HEADER = "x-test-principal"
# The callers the admin tests act as, named in PRINCIPAL_HEADER.
PRINCIPALS: dict[str, Principal] = {
    "admin": Principal(
        subject="bootstrap-admin", kind=PrincipalKind.bootstrap, roles=[Role.programme_admin]
    ),
    "manager": Principal(
        subject="api_key:managercaf01",
        kind=PrincipalKind.api_key,
        roles=[Role.network_manager],
        network="caf",
    ),
    "agent": Principal(
        subject="agent:someone", kind=PrincipalKind.agent, roles=[Role.agent], network="caf"
    ),
    "moderator": Principal(subject="agent:mod", kind=PrincipalKind.agent, roles=[Role.moderator]),
    "anonymous": ANONYMOUS,
}


def as_principal(name: str) -> dict[str, str]:
    return {PRINCIPAL_HEADER: name}


class PrincipalFromHeader:
    """Test only: what the gateway does before its admin routes run, putting
    the caller's principal in the request state (here named by a header;
    none at all without it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == PRINCIPAL_HEADER.encode():
                    scope.setdefault("state", {})[PRINCIPAL_STATE] = PRINCIPALS[value.decode()]
        await self.app(scope, receive, send)


def admin_app(db: Database, *, cache_seconds: float = 5.0) -> ASGIApp:
    """The admin router in an app wired like the gateway's own (problem+json,
    request ids, ``app.state`` holding the database and both stores)."""
    from contextlib import asynccontextmanager

    from spp_gateway.admin import router
    from spp_gateway.store import AgentDirectory, ApiKeyStore
    from spp_shared.kit.errors import install_problem_handlers
    from spp_shared.kit.logging import RequestContextMiddleware
    from spp_shared.kit.openapi import operation_id

    api_keys = ApiKeyStore(db, cache_seconds=cache_seconds, last_used_resolution=60.0)
    agents = AgentDirectory(db, cache_seconds=cache_seconds)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await api_keys.close()

    app = FastAPI(lifespan=lifespan, generate_unique_id_function=operation_id)
    app.state.db = app.state.gateway_db = db
    app.state.api_keys = api_keys
    app.state.agents = agents
    install_problem_handlers(app)
    app.include_router(router)
    return RequestContextMiddleware(PrincipalFromHeader(app), service="gateway", access_log=False)


def _inner_app(app: ASGIApp) -> FastAPI:
    inner: Any = app
    while not isinstance(inner, FastAPI):
        inner = inner.app
    return inner


@dataclass
class Admin:
    """The admin app under test: an HTTP client and the objects behind it."""

    client: httpx.AsyncClient
    app: FastAPI
    db: Database

    @property
    def api_keys(self) -> Any:
        return self.app.state.api_keys

    @property
    def agents(self) -> Any:
        return self.app.state.agents


@pytest.fixture
async def admin(gateway_database: Database) -> AsyncIterator[Admin]:
    from asgi_lifespan import LifespanManager

    app = admin_app(gateway_database)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield Admin(client=client, app=_inner_app(app), db=gateway_database)

"""The gateway application: a pure ASGI dispatcher in front of two apps.

``/v1/...`` goes straight to :class:`~spp_gateway.proxy.Proxy` (no framework
on the hot path), which authenticates, applies the rate limits, then either
forwards to a service or, for the gateway's own resources (API keys, agent
mappings, audit log), calls the small FastAPI app that also serves health,
readiness, metrics, the merged OpenAPI and its docs, and owns the lifespan
(the upstream session, the credential database, the rate-limit storage).

In front of it all, outermost first: security headers, request context (id
and access log), CORS, and the request size bounds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Receive, Scope, Send

from spp_gateway.admin import TAGS as ADMIN_TAGS
from spp_gateway.admin import router as admin_router
from spp_gateway.auth import Authenticator
from spp_gateway.hardening import BodyPolicy, RequestBounds, cors
from spp_gateway.metrics import GatewayMetrics
from spp_gateway.oidc import OidcConfig, OidcVerifier
from spp_gateway.openapi import OpenAPICache, OpenAPIClash
from spp_gateway.ops import OpsToken, Reused
from spp_gateway.proxy import Proxy
from spp_gateway.ratelimit import RateLimiter
from spp_gateway.routes import API_PREFIX, RouteTable
from spp_gateway.settings import GatewaySettings
from spp_gateway.store import AgentDirectory, ApiKeyStore, record_request
from spp_gateway.uploads import UploadSlots
from spp_gateway.upstream import UpstreamClient
from spp_shared.kit.db import Database
from spp_shared.kit.errors import ServiceUnavailable, install_problem_handlers
from spp_shared.kit.guards import ControlCharacterGuard
from spp_shared.kit.identity import Principal
from spp_shared.kit.logging import RequestContextMiddleware, configure_logging
from spp_shared.kit.metrics import MetricsMiddleware
from spp_shared.kit.openapi import build_openapi
from spp_shared.kit.security_headers import SecurityHeaders
from spp_shared.kit.settings import gateway_signer

SERVICE_NAME = "gateway"
# A probe every few seconds sees a fresh answer; a flood of anonymous calls
# costs the upstreams one round of checks a second.
READINESS_REUSE_SECONDS = 1.0
_API_PATH_PREFIX = API_PREFIX + "/"


class Gateway:
    """Sends API paths to the proxy and the rest to the gateway's own app."""

    __slots__ = ("internal", "proxy")

    def __init__(self, proxy: ASGIApp, internal: ASGIApp) -> None:
        self.proxy = proxy
        self.internal = internal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith(_API_PATH_PREFIX) or path == API_PREFIX:
                await self.proxy(scope, receive, send)
                return
        await self.internal(scope, receive, send)


async def _probe(session: aiohttp.ClientSession, url: str, seconds: float) -> dict[str, Any]:
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=seconds), allow_redirects=False
        ) as resp:
            await resp.read()
            return {
                "status": "ok" if resp.status == 200 else "unavailable",
                "http_status": resp.status,
            }
    except (TimeoutError, aiohttp.ClientError) as exc:
        return {"status": "unreachable", "error": type(exc).__name__}


async def _database_ready(db: Database) -> str:
    """'ok' when the credential tables can be read (migrated, reachable)."""
    try:
        async with db.read_sessionmaker() as session:
            await session.execute(text("SELECT 1 FROM api_keys WHERE 1 = 0"))
    except (SQLAlchemyError, OSError):
        return "unavailable"
    return "ok"


@dataclass
class Parts:
    """What the gateway opens at startup and closes at shutdown."""

    upstream: UpstreamClient
    db: Database
    # False when the caller handed the database in (and disposes of it).
    owns_db: bool
    api_keys: ApiKeyStore
    agents: AgentDirectory
    limiter: RateLimiter


def gateway_document() -> dict[str, Any]:
    """The document of the gateway's own resources (API keys, agent mappings,
    audit log), described as the services' routes are: same answers, same
    credentials. The merge (spp_gateway.openapi) takes it like a service's."""
    return build_openapi(
        title="Services Publics+ gateway",
        version="1.0.0",
        description=None,
        routes=admin_router.routes,
        tags=ADMIN_TAGS,
    )


def _internal_app(
    settings: GatewaySettings, routes: RouteTable, parts: Parts, metrics: GatewayMetrics
) -> FastAPI:
    upstream = parts.upstream

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await upstream.open()
        try:
            yield
        finally:
            await upstream.close()
            await parts.api_keys.close()
            await parts.limiter.close()
            if parts.owns_db:
                await parts.db.dispose()

    app = FastAPI(
        # A redirect would name whatever Host the client sent.
        redirect_slashes=False,
        title="Services Publics+ gateway",
        openapi_url=None,  # /openapi.json is the merged document below
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service_name = SERVICE_NAME
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.db = parts.db
    app.state.api_keys = parts.api_keys
    app.state.agents = parts.agents
    install_problem_handlers(app)
    app.include_router(admin_router)

    own_document = gateway_document()  # built once: the routes do not change

    openapi_cache = OpenAPICache(
        routes,
        upstream,
        ttl=settings.openapi_cache_seconds,
        fetch_timeout=settings.readiness_timeout,
        local=lambda: own_document,
        server_url=settings.public_url,
        oidc_issuer=settings.oidc_issuer,
    )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": SERVICE_NAME}

    ops = OpsToken(settings.metrics_token.get_secret_value() if settings.metrics_token else None)

    async def check_readiness() -> tuple[bool, dict[str, Any]]:
        names = list(routes.upstreams)
        results = await asyncio.gather(
            *(
                _probe(
                    upstream.session,
                    routes.upstreams[n].base_url + "/readyz",
                    settings.readiness_timeout,
                )
                for n in names
            )
        )
        services = dict(zip(names, results, strict=True))
        database = await _database_ready(parts.db)
        ready = database == "ok" and all(r["status"] == "ok" for r in services.values())
        return ready, {"service": SERVICE_NAME, "database": database, "services": services}

    readiness = Reused(check_readiness, seconds=READINESS_REUSE_SECONDS)

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        # Anyone (a load balancer, a probe) learns whether to send traffic;
        # which part is down, only the operations tooling.
        operator = ops.operator(request)
        ready, details = await readiness.get()
        body: dict[str, Any] = {"status": "ok" if ready else "unavailable"}
        if operator:
            body |= details
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics_endpoint(request: Request) -> Response:
        ops.require(request)
        return metrics.render()

    @app.get("/openapi.json")
    async def openapi() -> Response:
        try:
            return Response(await openapi_cache.get(), media_type="application/json")
        except OpenAPIClash as exc:
            # Serving a renamed schema would change clients generated from it.
            raise ServiceUnavailable(str(exc)) from None

    @app.get("/docs")
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Services Publics+ API")

    return app


def _oidc(settings: GatewaySettings) -> OidcVerifier | None:
    if not settings.oidc_issuer:
        return None
    if not settings.oidc_audience:
        raise ValueError("SPP_GATEWAY_OIDC_AUDIENCE is required with SPP_GATEWAY_OIDC_ISSUER")
    return OidcVerifier(
        OidcConfig(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            jwks_url=settings.oidc_jwks_url,
            algorithms=tuple(settings.oidc_algorithms),
            leeway_seconds=settings.oidc_leeway_seconds,
        )
    )


def create_app(
    settings: GatewaySettings | None = None, *, database: Database | None = None
) -> ASGIApp:
    """The gateway. ``database``: one the caller made and keeps (see
    :func:`spp_shared.kit.app.create_service_app`); else its own from the settings."""
    settings = settings or GatewaySettings()
    configure_logging(settings.log_level, settings.log_json)
    # Before anything else: a gateway without its key must not start.
    signer = gateway_signer(settings.signing_key)
    routes = RouteTable(settings.upstream_urls())
    upstream = UpstreamClient(settings)
    metrics = GatewayMetrics(SERVICE_NAME)
    db = database or Database(
        settings.database_url.get_secret_value(), pool_size=settings.database_pool_size
    )
    parts = Parts(
        upstream=upstream,
        db=db,
        owns_db=database is None,
        api_keys=ApiKeyStore(
            db,
            cache_seconds=settings.credential_cache_seconds,
            last_used_resolution=settings.last_used_resolution_seconds,
        ),
        agents=AgentDirectory(db, cache_seconds=settings.credential_cache_seconds),
        limiter=RateLimiter.from_settings(settings, key_prefix=settings.rate_limit_key_prefix),
    )
    auth = Authenticator(
        bootstrap_token=(
            settings.bootstrap_token.get_secret_value() if settings.bootstrap_token else None
        ),
        signer=signer,
        keys=parts.api_keys,
        agents=parts.agents,
        oidc=_oidc(settings),
        session=lambda: upstream.session,
    )

    async def audit(
        *, principal: Principal, method: str, path: str, status: int, request_id: str
    ) -> None:
        await record_request(
            db, actor=principal, method=method, path=path, status=status, request_id=request_id
        )

    # The gateway's own routes refuse what the services' do (the kit's guard):
    # a gzip body read as JSON would answer nonsense, not 415.
    internal = ControlCharacterGuard(_internal_app(settings, routes, parts, metrics))
    proxy = Proxy(
        routes=routes,
        auth=auth,
        upstream=upstream,
        metrics=metrics,
        local=internal,
        limiter=parts.limiter if settings.rate_limits_enabled else None,
        audit=audit,
        bodies=BodyPolicy(settings),
        uploads=UploadSlots(settings.uploads_per_caller),
    )
    root: ASGIApp = Gateway(proxy, MetricsMiddleware(internal, metrics=metrics))
    root = RequestBounds(root, settings)
    root = cors(root, settings)
    root = RequestContextMiddleware(root, service=SERVICE_NAME, access_log=settings.access_log)
    return SecurityHeaders(root)

"""The gateway application: a pure ASGI dispatcher in front of two apps.

``/v1/...`` goes straight to :class:`~spp_gateway.proxy.Proxy` (no framework
on the hot path); everything else (health, readiness, metrics, the merged
OpenAPI and its docs) is a small FastAPI app that also owns the lifespan,
where the shared upstream session is opened and closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from spp_gateway.auth import Authenticator
from spp_gateway.metrics import GatewayMetrics
from spp_gateway.openapi import OpenAPICache
from spp_gateway.proxy import Proxy
from spp_gateway.routes import API_PREFIX, RouteTable
from spp_gateway.settings import GatewaySettings
from spp_gateway.upstream import UpstreamClient
from spp_shared.kit.errors import install_problem_handlers
from spp_shared.kit.logging import RequestContextMiddleware, configure_logging
from spp_shared.kit.metrics import MetricsMiddleware
from spp_shared.kit.settings import require_assertion_key

SERVICE_NAME = "gateway"
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


def _internal_app(
    settings: GatewaySettings,
    routes: RouteTable,
    upstream: UpstreamClient,
    metrics: GatewayMetrics,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await upstream.open()
        try:
            yield
        finally:
            await upstream.close()

    app = FastAPI(
        title="Services Publics+ gateway",
        openapi_url=None,  # /openapi.json is the merged document below
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service_name = SERVICE_NAME
    app.state.settings = settings
    app.state.metrics = metrics
    install_problem_handlers(app)
    openapi_cache = OpenAPICache(
        routes,
        upstream,
        ttl=settings.openapi_cache_seconds,
        fetch_timeout=settings.readiness_timeout,
    )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": SERVICE_NAME}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
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
        ready = all(r["status"] == "ok" for r in services.values())
        return JSONResponse(
            {
                "status": "ok" if ready else "unavailable",
                "service": SERVICE_NAME,
                "services": services,
            },
            status_code=200 if ready else 503,
        )

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        return metrics.render()

    @app.get("/openapi.json")
    async def openapi() -> Response:
        return Response(await openapi_cache.get(), media_type="application/json")

    @app.get("/docs")
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Services Publics+ API")

    return app


def create_app(settings: GatewaySettings | None = None) -> ASGIApp:
    settings = settings or GatewaySettings()
    configure_logging(settings.log_level, settings.log_json)
    routes = RouteTable(settings.upstream_urls())
    upstream = UpstreamClient(settings)
    metrics = GatewayMetrics(SERVICE_NAME)
    auth = Authenticator(
        bootstrap_token=(
            settings.bootstrap_token.get_secret_value() if settings.bootstrap_token else None
        ),
        assertion_key=require_assertion_key(settings.assertion_key),
        cache_seconds=settings.assertion_cache_seconds,
    )
    proxy = Proxy(routes=routes, auth=auth, upstream=upstream, metrics=metrics)
    internal = _internal_app(settings, routes, upstream, metrics)
    root = Gateway(proxy, MetricsMiddleware(internal, metrics=metrics))
    return RequestContextMiddleware(root, service=SERVICE_NAME, access_log=settings.access_log)

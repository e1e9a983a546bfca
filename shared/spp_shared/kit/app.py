"""The app factory every service uses: same wiring, same behaviour everywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI

from spp_shared.kit.db import Database
from spp_shared.kit.errors import install_problem_handlers
from spp_shared.kit.guards import ControlCharacterGuard
from spp_shared.kit.health import router as health_router
from spp_shared.kit.identity import AssertionGuard
from spp_shared.kit.jobs import TAGS as JOBS_TAGS
from spp_shared.kit.jobs import JobGauge, jobs_router
from spp_shared.kit.logging import RequestContextMiddleware, configure_logging
from spp_shared.kit.metrics import Metrics, MetricsMiddleware, metrics_endpoint
from spp_shared.kit.openapi import build_openapi, operation_id
from spp_shared.kit.security_headers import SecurityHeaders
from spp_shared.kit.settings import ServiceSettings, service_keys

Hook = Callable[[FastAPI], Awaitable[None]]


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    version: str = "0.1.0",
    routers: Sequence[APIRouter] = (),
    tags: Mapping[str, str] | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    database: Database | None = None,
) -> FastAPI:
    """The service's app. ``database``: one the caller made and keeps (tests
    hand theirs to each app they build), used as it is and never disposed
    here; without it, the app makes its own from the settings."""
    configure_logging(settings.log_level, settings.log_json)
    # Before anything else: a service without its keys must not start.
    signer, verifier = service_keys(settings)
    db = database or Database(
        settings.database_url.get_secret_value(),
        echo=settings.database_echo,
        pool_size=settings.database_pool_size,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for hook in on_startup:
            await hook(app)
        try:
            yield
        finally:
            for hook in on_shutdown:
                await hook(app)
            if database is None:
                await db.dispose()

    app = FastAPI(
        # Behind the gateway a redirect would name the service's own address.
        redirect_slashes=False,
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        # One docs page, Swagger UI at /docs, as the gateway's: its CSP is
        # written for that page (kit/security_headers.py).
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.service_name = settings.service_name
    # The service's own identity, for its calls to the others (ServiceClient).
    app.state.signer = signer
    metrics = Metrics(settings.service_name)
    metrics.refreshers.append(JobGauge(metrics.registry, settings.service_name).refresh)
    app.state.metrics = metrics

    install_problem_handlers(app)
    app.include_router(health_router)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    # Before the service's routes: /v1/sites/jobs is not the site "jobs".
    app.include_router(jobs_router(settings.service_name))
    for router in routers:
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            # Every answer and credential declared from the routes (kit.openapi);
            # ``tags`` describes each tag the service's routes use; the kit's own.
            app.openapi_schema = build_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags={**JOBS_TAGS, **(tags or {})},
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(AssertionGuard, verifier=verifier)
    app.add_middleware(ControlCharacterGuard)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(
        RequestContextMiddleware, service=settings.service_name, access_log=settings.access_log
    )
    # Outermost of ours, as at the gateway; FastAPI answers a crash's 500
    # outside every middleware (the kit's handler, which logs it).
    app.add_middleware(SecurityHeaders, answer_crashes=False)
    return app

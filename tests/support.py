"""Helpers the tests share (fixtures live in conftest.py files)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from spp_shared.kit.identity import Principal, sign_assertion

# Set to a PostgreSQL URL to run the suite there (README, "Tests on PostgreSQL").
PG_URL_ENV = "SPP_TEST_DATABASE_URL"

# The suite's own assertion key (services refuse to start without one).
TEST_ASSERTION_KEY = "spp-test-assertion-key-0123456789abcdef"


def assertion_headers(principal: Principal, key: str = TEST_ASSERTION_KEY) -> dict[str, str]:
    return {"x-spp-assertion": sign_assertion(principal, key)}


@asynccontextmanager
async def serve_asgi(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan, behind an httpx client on the ASGI transport."""
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client

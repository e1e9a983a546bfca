"""Helpers the tests share (fixtures live in conftest.py files)."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp

from spp_shared.kit.db import Database
from spp_shared.kit.identity import (
    ANONYMOUS,
    ASSERTION_HEADER,
    GATEWAY_ISSUER,
    AssertionSigner,
    AssertionVerifier,
    Principal,
    ServiceSigner,
)
from spp_shared.kit.keys import (
    PUBLIC_KEYS_ENV,
    generate_private_key_pem,
    platform_keys_env,
    signing_key_env,
)

# Set to a PostgreSQL URL to run the suite there (README, "Tests on PostgreSQL").
PG_URL_ENV = "SPP_TEST_DATABASE_URL"

SERVICES = ("sites", "feedback", "indicators", "labelling")

# The suite's own keys, new for each run (processes refuse to start without
# theirs): conftest.py puts them in the environment every app and process reads.
TEST_KEYS_ENV = platform_keys_env(("gateway", *SERVICES))
TEST_PUBLIC_KEYS: dict[str, list[str]] = json.loads(TEST_KEYS_ENV[PUBLIC_KEYS_ENV])
GATEWAY_SIGNER = AssertionSigner(
    GATEWAY_ISSUER, TEST_KEYS_ENV[signing_key_env("gateway")], setting="test gateway key"
)
TEST_VERIFIER = AssertionVerifier(TEST_PUBLIC_KEYS, setting="test public keys")
# The gateway's name on a key nobody lists.
STRANGER_SIGNER = AssertionSigner(
    GATEWAY_ISSUER, generate_private_key_pem(), setting="a stranger's key"
)


def service_signer(service: str) -> ServiceSigner:
    """What ``service`` signs its own calls with in this test run."""
    return ServiceSigner(service, TEST_KEYS_ENV[signing_key_env(service)], setting=service)


# An assertion is bound to its request (method, path, request id), which a
# headers dict does not know yet: assertion_headers hands out a reference,
# and AsGateway signs it for the request that carries it.
_PENDING_PREFIX = "sign-when-sent-"
_pending: dict[str, tuple[Principal, AssertionSigner, float | None]] = {}


def assertion_headers(
    principal: Principal, signer: AssertionSigner = GATEWAY_SIGNER, *, issued: float | None = None
) -> dict[str, str]:
    """Headers asserting ``principal`` (signed by the gateway's key unless
    ``signer`` says otherwise; issued now unless ``issued`` says when),
    signed when sent by a client with :class:`AsGateway`."""
    reference = _PENDING_PREFIX + uuid.uuid4().hex
    _pending[reference] = (principal, signer, issued)
    return {ASSERTION_HEADER: reference}


def expired_assertion_headers(principal: Principal) -> dict[str, str]:
    """An assertion the platform signed, past its life."""
    return assertion_headers(principal, issued=time.time() - 600)


def foreign_assertion_headers(principal: Principal) -> dict[str, str]:
    """An assertion well formed and in date, for its request, signed with a
    key the platform does not hold (under the gateway's name)."""
    return assertion_headers(principal, STRANGER_SIGNER)


class AsGateway(httpx.Auth):
    """Signs what the gateway would, for the request being sent: the
    principal of :func:`assertion_headers`, or (``anonymous``) an anonymous
    assertion when the request has none."""

    def __init__(self, *, anonymous: bool = True) -> None:
        self.anonymous = anonymous

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        value = request.headers.get(ASSERTION_HEADER)
        if value is not None and value.startswith(_PENDING_PREFIX):
            principal, signer, issued = _pending[value]
        elif value is None and self.anonymous:
            principal, signer, issued = ANONYMOUS, GATEWAY_SIGNER, None
        else:
            yield request
            return
        request.headers[ASSERTION_HEADER] = signer.sign(
            principal,
            method=request.method,
            path=request.url.path,
            request_id=request.headers.get("x-request-id"),
            now=issued,
        )
        yield request


@asynccontextmanager
async def serve_asgi(app: FastAPI, *, as_gateway: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan, behind an httpx client on the ASGI transport.

    The client calls like the gateway does (every request carries an assertion,
    anonymous by default); ``as_gateway=False`` calls the service bare (only
    what :func:`assertion_headers` gave is signed).
    """
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://testserver",
            auth=AsGateway(anonymous=as_gateway),
        ) as client:
            yield client


@asynccontextmanager
async def database_with(url: str, *tables: MetaData | Table) -> AsyncIterator[Database]:
    """A :class:`Database` on ``url`` with ``tables`` created, disposed after."""
    database = Database(url)
    try:
        async with database.engine.begin() as conn:
            for what in tables:
                await conn.run_sync(what.create_all if isinstance(what, MetaData) else what.create)
        yield database
    finally:
        await database.dispose()


@dataclass
class ServiceDB:
    url: str
    metadata: MetaData
    seed: Callable[[AsyncSession], Awaitable[Any]] | None = None

    async def reset(self, database: Database | None = None) -> None:
        """Empty every table of the service, then load its reference data,
        through ``database`` (else a :class:`Database` made for it)."""
        db = database or Database(self.url, pool_size=1)
        try:
            async with db.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    names = ", ".join(f'"{t.name}"' for t in self.metadata.sorted_tables)
                    if names:
                        await conn.execute(text(f"TRUNCATE {names} CASCADE"))
                else:
                    for table in reversed(self.metadata.sorted_tables):
                        await conn.execute(table.delete())
            if self.seed is not None:
                async with db.sessionmaker() as session:
                    await self.seed(session)
                    await session.commit()
        finally:
            if database is None:
                await db.dispose()


class ServedApp:
    """An ASGI app served by uvicorn in a daemon thread, on its own port."""

    def __init__(self, app: ASGIApp, **config: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        options: dict[str, Any] = {
            "log_level": "warning",
            "lifespan": "on",
            "server_header": True,
            "access_log": False,
        }
        options.update(config)
        self.server = uvicorn.Server(uvicorn.Config(app, **options))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self, timeout: float = 10.0) -> ServedApp:
        self.thread.start()
        for _ in range(int(timeout / 0.01)):
            if self.server.started:
                return self
            if not self.thread.is_alive():
                break
            threading.Event().wait(0.01)
        raise RuntimeError("uvicorn did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def dead_url() -> str:
    """A 127.0.0.1 URL where nothing listens: connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"

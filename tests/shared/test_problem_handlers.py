"""The kit's problem handlers (kit/errors.py) on an app of their own: every
error, the framework's and ours, answers RFC 9457 problem+json with the
request id, and never a stack trace."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
import structlog
from fastapi import APIRouter, FastAPI, Query
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.responses import Response

from spp_shared.kit import errors
from spp_shared.kit.errors import (
    PROBLEM_MEDIA_TYPE,
    TYPE_BASE,
    Conflict,
    EarlyResponse,
    Unauthorized,
    install_problem_handlers,
)
from spp_shared.kit.logging import RequestContextMiddleware

pytestmark = pytest.mark.anyio


class Thing(BaseModel):
    name: str
    size: int


def problem_app(locked_database: Path) -> RequestContextMiddleware:
    app = FastAPI()
    install_problem_handlers(app)
    router = APIRouter(prefix="/v1")

    @router.get("/things/{number}")
    async def get_thing(number: int, limit: Annotated[int, Query(le=10)] = 5) -> dict[str, int]:
        return {"number": number, "limit": limit}

    @router.patch("/things/{number}")
    async def patch_thing(number: int) -> dict[str, int]:
        return {"number": number}

    @router.post("/things")
    async def create_thing(thing: Thing) -> Thing:
        return thing

    @router.get("/taken")
    async def taken() -> None:
        raise Conflict(
            "The code is taken.",
            errors=[{"field": "code", "reason": "taken"}],
            headers={"Retry-After": "2"},
            existing="caf",
        )

    @router.get("/who")
    async def who() -> None:
        raise Unauthorized("Sign in first.")

    @router.get("/stale")
    async def stale() -> None:
        raise Unauthorized(headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail from deep inside")

    @router.get("/unchanged")
    async def unchanged() -> None:
        raise EarlyResponse(Response(status_code=304, headers={"ETag": '"v1"'}))

    @router.post("/write")
    async def write() -> None:
        # A real writer waiting for SQLite's one write lock, without patience.
        engine = create_async_engine(
            f"sqlite+aiosqlite:///{locked_database}", connect_args={"timeout": 0}
        )
        try:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES (1)"))
        finally:
            await engine.dispose()

    app.include_router(router)
    return RequestContextMiddleware(app, service="test", access_log=False)


@pytest.fixture
def locked_database(tmp_path: Path) -> Path:
    path = tmp_path / "locked.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    return path


@pytest.fixture
async def client(locked_database: Path) -> AsyncIterator[httpx.AsyncClient]:
    # The app re-raises a crash after answering (for the server's log).
    transport = httpx.ASGITransport(problem_app(locked_database), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert body["request_id"] == resp.headers["x-request-id"]
    return body


async def test_a_problem_keeps_its_members_headers_and_instance(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.get("/v1/taken", headers={"x-request-id": "rid-1"})
    body = problem(resp, 409)
    assert body == {
        "type": TYPE_BASE + "conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "The code is taken.",
        "instance": "/v1/taken",
        "errors": [{"field": "code", "reason": "taken"}],
        "existing": "caf",
        "request_id": "rid-1",
    }
    assert resp.headers["retry-after"] == "2"


async def test_a_401_names_the_scheme_unless_told_otherwise(client: httpx.AsyncClient) -> None:
    plain = await client.get("/v1/who")
    assert problem(plain, 401)["detail"] == "Sign in first."
    assert plain.headers["www-authenticate"] == "Bearer"
    stale = await client.get("/v1/stale")
    problem(stale, 401)
    assert stale.headers.get_list("www-authenticate") == ['Bearer error="invalid_token"']


async def test_an_unknown_route_is_a_404_naming_it(client: httpx.AsyncClient) -> None:
    body = problem(await client.get("/v1/nothing"), 404)
    assert body["type"] == TYPE_BASE + "not-found"
    assert body["detail"] == "No route matches GET /v1/nothing"


async def test_a_wrong_method_is_a_405_allowing_every_method_of_the_path(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.delete("/v1/things/1")
    body = problem(resp, 405)
    # Starlette alone would name the first route's methods only.
    assert resp.headers["allow"] == "GET, PATCH"
    assert body["detail"] == "DELETE is not allowed here; use GET, PATCH."


async def test_validation_errors_name_each_field_and_where(client: httpx.AsyncClient) -> None:
    body = problem(await client.get("/v1/things/x", params={"limit": 11}), 422)
    assert body["type"] == TYPE_BASE + "validation-error"
    assert sorted((e["location"], e["field"]) for e in body["errors"]) == [
        ("path", "number"),
        ("query", "limit"),
    ]
    assert body["detail"] == "Invalid fields: limit, number"
    fields = problem(await client.post("/v1/things", json={"name": 3}), 422)
    assert sorted(e["field"] for e in fields["errors"]) == ["name", "size"]


async def test_malformed_json_says_where_it_breaks(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/things", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    (error,) = problem(resp, 422)["errors"]
    assert error["field"] == "body"
    assert error["reason"].startswith("invalid JSON at character 9")


async def test_a_crash_is_a_500_with_the_id_and_nothing_of_the_error(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A logger of the module's name not yet cached under an earlier
    # configure_logging (every app the suite builds configures logging again).
    monkeypatch.setattr(errors, "log", structlog.get_logger("spp.errors"))
    with structlog.testing.capture_logs() as logs:
        resp = await client.get("/v1/boom")
    body = problem(resp, 500)
    assert body["type"] == TYPE_BASE + "internal-error"
    assert "secret" not in resp.text
    assert "Traceback" not in resp.text
    (logged,) = [e for e in logs if e["event"] == "unhandled_error"]
    assert logged["error_type"] == "RuntimeError"


async def test_a_locked_sqlite_database_is_busy_not_broken(
    client: httpx.AsyncClient, locked_database: Path
) -> None:
    holder = sqlite3.connect(locked_database)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        resp = await client.post("/v1/write")
    finally:
        holder.rollback()
        holder.close()
    body = problem(resp, 503)
    assert resp.headers["retry-after"] == "1"
    assert "busy" in body["detail"]


async def test_an_early_response_is_sent_as_it_is(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/unchanged")
    assert resp.status_code == 304
    assert resp.headers["etag"] == '"v1"'
    assert resp.content == b""

"""Conditional GET: one dependency, validators on the 200 and the 304 alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from spp_shared.kit.conditional import NOT_MODIFIED, ConditionalGetDep
from spp_shared.kit.errors import install_problem_handlers
from spp_shared.kit.etags import http_date, make_etag

pytestmark = pytest.mark.anyio

CHANGED = datetime(2026, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)
TAG = make_etag("T1", 3)


class Thing(BaseModel):
    id: str


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/things/{thing_id}", response_model=Thing, responses=NOT_MODIFIED)
    async def get_thing(thing_id: str, conditional: ConditionalGetDep) -> Thing:
        conditional.check(TAG, CHANGED)
        return Thing(id=thing_id)

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_a_200_carries_the_validators(client: httpx.AsyncClient) -> None:
    resp = await client.get("/things/T1")
    assert resp.status_code == 200
    assert resp.json() == {"id": "T1"}
    assert resp.headers["etag"] == TAG
    assert resp.headers["last-modified"] == "Tue, 03 Feb 2026 04:05:06 GMT"


@pytest.mark.parametrize(
    "headers",
    [
        {"If-None-Match": TAG},
        {"If-None-Match": f"W/{TAG}"},
        {"If-None-Match": "*"},
        {"If-Modified-Since": http_date(CHANGED)},
        {"If-Modified-Since": "Wed, 01 Jan 2031 00:00:00 GMT"},
    ],
)
async def test_a_current_copy_gets_a_304_with_the_validators(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    resp = await client.get("/things/T1", headers=headers)
    assert resp.status_code == 304
    assert resp.content == b""
    assert resp.headers["etag"] == TAG
    assert resp.headers["last-modified"] == http_date(CHANGED)


async def test_every_if_none_match_line_counts(client: httpx.AsyncClient) -> None:
    resp = await client.get(
        "/things/T1", headers=[("If-None-Match", '"T1.2"'), ("If-None-Match", TAG)]
    )
    assert resp.status_code == 304


@pytest.mark.parametrize(
    "headers",
    [
        {"If-None-Match": '"T1.2"'},
        {"If-Modified-Since": "Mon, 02 Feb 2026 00:00:00 GMT"},
        {"If-Modified-Since": "yesterday"},  # ignored, as RFC 9110 says
        # If-None-Match decides when sent (RFC 9110 §13.2.2).
        {"If-None-Match": '"T1.2"', "If-Modified-Since": http_date(CHANGED)},
    ],
)
async def test_a_stale_copy_gets_the_resource(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    resp = await client.get("/things/T1", headers=headers)
    assert resp.status_code == 200
    assert resp.headers["etag"] == TAG


def test_the_openapi_declares_the_304_and_the_headers_read() -> None:
    operation = make_app().openapi()["paths"]["/things/{thing_id}"]["get"]
    assert set(operation["responses"]["304"]["headers"]) == {"ETag", "Last-Modified"}
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert headers == {"if-none-match", "if-modified-since"}

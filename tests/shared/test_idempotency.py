"""Idempotent creation: one dependency, Stripe's semantics, on the suite's
database (SQLite, or PostgreSQL with SPP_TEST_DATABASE_URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI, Response
from pydantic import BaseModel
from sqlalchemy import Column, MetaData, String, Table, func, select, update
from starlette.types import ASGIApp, Receive, Scope, Send

from spp_shared.kit.db import Database, SessionDep
from spp_shared.kit.errors import Conflict, install_problem_handlers
from spp_shared.kit.idempotency import IDEMPOTENCY_KEYS, TTL, IdempotencyDep
from spp_shared.kit.identity import PRINCIPAL_STATE, Principal, PrincipalKind
from tests.support import database_with

pytestmark = pytest.mark.anyio

metadata = MetaData()
# No key: creating twice is what a lost replay would show.
things = Table("things", metadata, Column("name", String(50)))


class ThingIn(BaseModel):
    name: str


class ThingOut(BaseModel):
    name: str
    number: int


class AsCaller:
    """Stands for the assertion check (tested in test_identity): the caller
    is who ``x-test-caller`` names, anonymous without it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            subject = dict(scope["headers"]).get(b"x-test-caller")
            principal = (
                Principal(subject=subject.decode(), kind=PrincipalKind.api_key)
                if subject
                else Principal()
            )
            scope.setdefault("state", {})[PRINCIPAL_STATE] = principal
        await self.app(scope, receive, send)


def make_app(db: Database) -> FastAPI:
    app = FastAPI()
    app.state.db = db
    install_problem_handlers(app)
    app.add_middleware(AsCaller)

    @app.post("/things", status_code=201)
    async def create_thing(data: ThingIn, session: SessionDep, idem: IdempotencyDep) -> Response:
        await session.execute(things.insert().values(name=data.name))
        if data.name.startswith("fail"):
            # After the write: the key's claim must go with it.
            raise Conflict("refused after writing")
        number = (await session.execute(select(func.count()).select_from(things))).scalar_one()
        out = ThingOut(name=data.name, number=number)
        return await idem.respond(201, out, {"Location": f"/things/{data.name}", "X-Other": "1"})

    return app


@pytest.fixture
def url(fresh_database_url: Callable[[str], str]) -> str:
    return fresh_database_url("kit_idempotency")


@pytest.fixture
async def db(url: str) -> AsyncIterator[Database]:
    async with database_with(url, metadata, IDEMPOTENCY_KEYS) as database:
        yield database


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(db))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def count(db: Database) -> int:
    async with db.read_sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(things))).scalar_one()


def caller(name: str, key: str | None = None) -> dict[str, str]:
    return {"x-test-caller": name} | ({"Idempotency-Key": key} if key else {})


async def test_a_retry_gets_the_first_answer_and_creates_nothing(
    client: httpx.AsyncClient, db: Database
) -> None:
    first = await client.post("/things", json={"name": "a"}, headers=caller("k1", "key-1"))
    again = await client.post("/things", json={"name": "a"}, headers=caller("k1", "key-1"))
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["location"] == "/things/a"
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert "x-other" not in again.headers  # only the headers worth replaying
    assert await count(db) == 1


async def test_the_same_key_for_another_request_is_refused(client: httpx.AsyncClient) -> None:
    await client.post("/things", json={"name": "a"}, headers=caller("k1", "key-1"))
    other = await client.post("/things", json={"name": "b"}, headers=caller("k1", "key-1"))
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")


async def test_keys_are_each_caller_s_own(client: httpx.AsyncClient, db: Database) -> None:
    await client.post("/things", json={"name": "a"}, headers=caller("k1", "same"))
    other = await client.post("/things", json={"name": "b"}, headers=caller("k2", "same"))
    assert other.status_code == 201
    assert "idempotent-replayed" not in other.headers
    assert await count(db) == 2


async def test_anonymous_callers_never_get_a_replay(
    client: httpx.AsyncClient, db: Database
) -> None:
    # They share one identity: a replay would hand one person another's answer.
    await client.post("/things", json={"name": "a"}, headers={"Idempotency-Key": "k"})
    again = await client.post("/things", json={"name": "a"}, headers={"Idempotency-Key": "k"})
    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers
    assert await count(db) == 2


async def test_a_failed_request_leaves_no_key(client: httpx.AsyncClient, db: Database) -> None:
    failed = await client.post("/things", json={"name": "fail-1"}, headers=caller("k1", "key-f"))
    assert failed.status_code == 409
    assert await count(db) == 0
    # Nothing was kept: the same key is free for the same request.
    again = await client.post("/things", json={"name": "fail-1"}, headers=caller("k1", "key-f"))
    assert again.status_code == 409
    assert again.json()["type"].endswith("/conflict")


async def test_an_expired_key_is_forgotten(client: httpx.AsyncClient, db: Database) -> None:
    await client.post("/things", json={"name": "a"}, headers=caller("k1", "old"))
    async with db.sessionmaker() as session:
        await session.execute(
            update(IDEMPOTENCY_KEYS).values(created_at=datetime.now(UTC) - TTL * 2)
        )
        await session.execute(things.delete())
        await session.commit()
    again = await client.post("/things", json={"name": "a"}, headers=caller("k1", "old"))
    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers
    assert await count(db) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
async def test_a_key_that_is_not_one_is_a_bad_request(
    client: httpx.AsyncClient, db: Database, key: str
) -> None:
    resp = await client.post(
        "/things", json={"name": "a"}, headers={"x-test-caller": "k1", "Idempotency-Key": key}
    )
    assert resp.status_code == 400
    assert resp.json()["type"].endswith("/invalid-idempotency-key")
    assert await count(db) == 0

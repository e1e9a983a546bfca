"""Async database access: one engine per process, one session and one
transaction per request.

SQLite (aiosqlite) is the embedded default and PostgreSQL (asyncpg) the
production database; everything here is written for both.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def is_postgresql(bind: AsyncSession | AsyncConnection) -> bool:
    """Whether a session or connection talks to PostgreSQL (else SQLite): the
    one test before a PostgreSQL fast path (COPY, unnest, ANALYZE)."""
    target = bind.bind if isinstance(bind, AsyncSession) else bind
    return target is not None and target.dialect.name == "postgresql"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The sqlite3 module opens transactions lazily and behind SQLAlchemy's
    # back, which breaks SAVEPOINTs (a RELEASE would commit); take control and
    # emit BEGIN ourselves (SQLAlchemy's documented recipe for pysqlite/aiosqlite).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers go on while the importer writes; foreign keys are off
    # by default in SQLite; busy_timeout turns lock contention into waiting.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE: take the write lock at the start, waiting (busy_timeout) for
    # the writer before. A deferred BEGIN that reads, then writes, fails at
    # once with "database is locked" when another writer got in between.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _options(read_only: bool) -> dict[str, Any]:
    # orjson for JSON columns: the stdlib encoder was a visible cost of imports.
    common: dict[str, Any] = {
        # Database errors are logged, and their bound values are citizens'
        # data (names, e-mails, phones): never in a log line.
        "hide_parameters": True,
        "json_serializer": _json_dumps,
        "json_deserializer": orjson.loads,
    }
    if read_only:
        common |= {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None}
    return common


def ensure_sqlite_dir(url: str) -> None:
    """SQLite creates the file, not its folder (``.var/`` on a fresh clone)."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)


# Pool policy on PostgreSQL (ADR 0025). No pre-ping on every checkout: it was
# a round trip per request (three on the write pool: BEGIN, SELECT, ROLLBACK).
# A connection is pinged only when it comes back from more than
# IDLE_PING_AFTER seconds unused, the case where a firewall, a proxy or a
# database restart may have cut it; under load connections never idle that
# long, so the check costs nothing. Connections are replaced after
# POOL_RECYCLE seconds whatever happens. A connection that breaks in use
# invalidates the pool (SQLAlchemy's disconnect handling), and the request
# gets a 503 to retry (kit.errors).
IDLE_PING_AFTER = 30.0
POOL_RECYCLE = 1800
# Seconds a request waits for a pooled connection before a 503.
POOL_TIMEOUT = 10.0
_IDLE_SINCE = "spp_idle_since"


def _mark_idle(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
    idle_since = record.info.pop(_IDLE_SINCE, None)
    if idle_since is None or time.monotonic() - idle_since < IDLE_PING_AFTER:
        return
    try:
        dbapi_connection.ping()
    except Exception as exc:
        # The pool's documented retry: this connection is dropped and the
        # checkout tried again with a new one.
        raise DisconnectionError("connection lost while idle") from exc


def create_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int = 10,
    max_overflow: int = 0,
    read_only: bool = False,
) -> AsyncEngine:
    if is_sqlite(url):
        ensure_sqlite_dir(url)
        engine = create_async_engine(url, echo=echo, **_options(read_only))
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        if not read_only:
            event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    # Overflow connections were opened and closed under load (each a TCP,
    # TLS negotiation and authentication): a burst beyond the pool waits for
    # a pooled connection instead, by default.
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=POOL_TIMEOUT,
        pool_recycle=POOL_RECYCLE,
        **_options(read_only),
    )
    event.listen(engine.sync_engine.pool, "checkin", _mark_idle)
    event.listen(engine.sync_engine.pool, "checkout", _ping_if_idle)
    return engine


class WriteSession(AsyncSession):
    """A session in a transaction that commits (``SessionDep``,
    ``Database.sessionmaker``). Functions that write take it, so a read
    session handed to them fails type checking: on the autocommit pool each
    statement would commit alone, half a change kept if the next one failed."""


class ReadSession(AsyncSession):
    """A session on the autocommit read pool (``ReadSessionDep``,
    ``Database.read_sessionmaker``). Functions that only read take the base
    ``AsyncSession``: either kind serves them."""


class Database:
    def __init__(
        self, url: str, *, echo: bool = False, pool_size: int = 10, max_overflow: int = 0
    ) -> None:
        self.url = url
        self.engine = create_engine(url, echo=echo, pool_size=pool_size, max_overflow=max_overflow)
        self.sessionmaker = async_sessionmaker(
            self.engine, class_=WriteSession, expire_on_commit=False
        )
        # Reads need no transaction: their own autocommit pool spares the
        # BEGIN/COMMIT round trips and the reset on return around each SELECT.
        self.read_engine = create_engine(
            url, echo=echo, pool_size=pool_size, max_overflow=max_overflow, read_only=True
        )
        self.read_sessionmaker = async_sessionmaker(
            self.read_engine, class_=ReadSession, expire_on_commit=False
        )

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        await self.read_engine.dispose()


async def database_dependency(request: Request) -> Database:
    """The app's :class:`Database`, for work that opens its own sessions (an
    import's transactions, an export streamed after the route returns)."""
    db: Database = request.app.state.db
    return db


DatabaseDep = Annotated[Database, Depends(database_dependency)]


async def session_dependency(request: Request) -> AsyncIterator[WriteSession]:
    """One session per request; commits before the response is sent.

    Used with ``scope="function"`` so the commit (or rollback) happens when
    the endpoint returns, not after the response: a client that reads right
    after a write sees it, and a failed commit is an error answer, not a lie.
    """
    db: Database = request.app.state.db
    async with db.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


SessionDep = Annotated[WriteSession, Depends(session_dependency, scope="function")]


async def read_session_dependency(request: Request) -> AsyncIterator[ReadSession]:
    """A session for endpoints that only read: autocommit, nothing to commit.

    Each statement sees the latest committed data; a read that needs several
    statements to agree with each other takes ``SessionDep`` instead.
    """
    db: Database = request.app.state.db
    async with db.read_sessionmaker() as session:
        yield session


ReadSessionDep = Annotated[ReadSession, Depends(read_session_dependency, scope="function")]


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

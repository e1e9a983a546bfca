"""The periodic commands, run as a scheduler runs them: ``python -m spp_sites
purge-idempotency`` and ``purge-jobs``, on the sites service's migrated database.

They must exit 0 after doing their work, 1 when they cannot, delete only
what has expired, and be safe to run again.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

from spp_shared.contracts.jobs import JobState
from spp_shared.kit.db import Database
from spp_shared.kit.idempotency import purge_expired
from spp_shared.kit.outbox import JOBS, enqueue
from spp_sites.cli import main
from spp_sites.models import idempotency_keys
from tests.support import ServiceDB


@pytest.fixture
def sites_url(sites_db: ServiceDB, monkeypatch: pytest.MonkeyPatch) -> str:
    asyncio.run(sites_db.reset())
    monkeypatch.setenv("SPP_SITES_DATABASE_URL", sites_db.url)
    monkeypatch.setenv("SPP_SITES_LOG_JSON", "true")
    return sites_db.url


async def _add_keys(url: str, ages: dict[str, timedelta]) -> None:
    # Ages from now, not from the import of this module: a whole suite may
    # run for minutes before this test, and 23 h 59 min would then be past 24 h.
    now = datetime.now(UTC)
    db = Database(url, pool_size=1)
    try:
        async with db.sessionmaker() as session, session.begin():
            for key, age in ages.items():
                await session.execute(
                    insert(idempotency_keys).values(
                        principal="key-caf",
                        key=key,
                        request_hash="0" * 64,
                        status_code=201,
                        created_at=now - age,
                    )
                )
    finally:
        await db.dispose()


async def _keys(url: str) -> list[str]:
    db = Database(url, pool_size=1)
    try:
        async with db.read_sessionmaker() as session:
            rows = await session.scalars(select(idempotency_keys.c.key).order_by("key"))
            return list(rows)
    finally:
        await db.dispose()


def run(*argv: str) -> int:
    try:
        main(list(argv))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def test_purge_idempotency_deletes_only_expired_keys(sites_url: str) -> None:
    asyncio.run(
        _add_keys(
            sites_url,
            {
                "a-year-old": timedelta(days=365),
                "expired": timedelta(hours=24, minutes=1),
                "nearly-expired": timedelta(hours=23, minutes=59),
                "fresh": timedelta(0),
            },
        )
    )
    assert run("purge-idempotency") == 0
    assert asyncio.run(_keys(sites_url)) == ["fresh", "nearly-expired"]
    # Nothing left to do is not an error.
    assert run("purge-idempotency") == 0
    assert asyncio.run(_keys(sites_url)) == ["fresh", "nearly-expired"]


def test_a_purge_that_cannot_reach_its_database_exits_1(
    sites_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPP_SITES_DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/none")
    assert run("purge-idempotency") == 1
    assert run("purge-jobs") == 1


@pytest.mark.anyio
async def test_a_purge_goes_by_batches_and_stops_at_its_time_budget(sites_db: ServiceDB) -> None:
    await sites_db.reset()
    await _add_keys(sites_db.url, {f"old-{n}": timedelta(days=2) for n in range(5)})
    db = Database(sites_db.url, pool_size=1)
    try:
        # No time left after the first batch: the rest waits for the next run.
        assert await purge_expired(db, idempotency_keys, batch_size=2, max_seconds=0) == 2
        assert await purge_expired(db, idempotency_keys, batch_size=2) == 3
    finally:
        await db.dispose()
    assert await _keys(sites_db.url) == []


async def _add_jobs(url: str) -> None:
    now = datetime.now(UTC)
    db = Database(url, pool_size=1)
    try:
        async with db.sessionmaker() as session, session.begin():
            for name in ("failed-long-ago", "failed-yesterday", "pending-long-ago"):
                job_id = await enqueue(session, name, {})
                state = JobState.pending if name.startswith("pending") else JobState.failed
                age = timedelta(days=1) if name.endswith("yesterday") else timedelta(days=31)
                await session.execute(
                    update(JOBS)
                    .where(JOBS.c.id == job_id)
                    .values(state=state, created_at=now - age, updated_at=now - age)
                )
    finally:
        await db.dispose()


async def _job_kinds(url: str) -> list[str]:
    db = Database(url, pool_size=1)
    try:
        async with db.read_sessionmaker() as session:
            return list(await session.scalars(select(JOBS.c.kind).order_by(JOBS.c.id)))
    finally:
        await db.dispose()


def test_purge_jobs_deletes_failed_jobs_past_their_retention(sites_url: str) -> None:
    asyncio.run(_add_jobs(sites_url))
    assert run("purge-jobs") == 0
    assert asyncio.run(_job_kinds(sites_url)) == ["failed-yesterday", "pending-long-ago"]

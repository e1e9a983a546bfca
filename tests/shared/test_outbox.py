"""The outbox and its worker, on the suite's database (SQLite or PostgreSQL).

A throwaway metadata holds the kit's outbox table and one table standing for
a service's change, so the job and the change share a transaction exactly as
they do in a service.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Column, Integer, String, Table, insert, select

from spp_shared.contracts.jobs import JobState
from spp_shared.kit.db import Database, new_metadata
from spp_shared.kit.outbox import JOBS, enqueue, outbox_table
from spp_shared.kit.worker import Backoff, Job, PermanentFailure, Worker

pytestmark = pytest.mark.anyio

METADATA = new_metadata()
outbox_table(METADATA)
CHANGES = Table("changes", METADATA, Column("id", Integer, primary_key=True), Column("v", String))


class Clock:
    """The workers' time, moved by the test instead of waited for (made after
    the jobs are enqueued: enqueue stamps them with the real time)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def url(fresh_database_url: Callable[[str], str]) -> str:
    return fresh_database_url("kit_outbox")


@pytest.fixture
async def db(url: str) -> AsyncIterator[Database]:
    database = Database(url, pool_size=4)
    async with database.engine.begin() as conn:
        await conn.run_sync(METADATA.create_all)
    yield database
    await database.dispose()


async def jobs(db: Database) -> list[Any]:
    async with db.read_sessionmaker() as session:
        return list((await session.execute(select(JOBS).order_by(JOBS.c.id))).all())


def recorder(seen: list[Job]) -> Callable[[Job], Any]:
    async def handle(job: Job) -> None:
        seen.append(job)

    return handle


async def test_a_rolled_back_change_sends_nothing(db: Database) -> None:
    seen: list[Job] = []
    async with db.sessionmaker() as session:
        await session.execute(insert(CHANGES).values(id=1, v="draft"))
        await enqueue(session, "notify", {"change": 1})
        await session.rollback()
    ran = await Worker(db, {"notify": recorder(seen)}).run_until_idle()
    assert (ran, seen, await jobs(db)) == (0, [], [])


async def test_a_committed_change_delivers_its_job_once(db: Database) -> None:
    seen: list[Job] = []
    async with db.sessionmaker() as session, session.begin():
        await session.execute(insert(CHANGES).values(id=1, v="published"))
        job_id = await enqueue(session, "notify", {"change": 1, "to": ["agent@caf.fr"]})
    worker = Worker(db, {"notify": recorder(seen)})
    assert await worker.run_until_idle() == 1
    assert [(j.id, j.kind, j.payload, j.attempt) for j in seen] == [
        (job_id, "notify", {"change": 1, "to": ["agent@caf.fr"]}, 1)
    ]
    # Done jobs leave the table; nothing runs twice.
    assert await jobs(db) == []
    assert await worker.run_until_idle() == 0


async def test_a_job_waits_for_its_delay_and_unknown_kinds_are_left_alone(db: Database) -> None:
    seen: list[Job] = []
    async with db.sessionmaker() as session, session.begin():
        await enqueue(session, "notify", {"n": 1}, delay=timedelta(minutes=5))
        await enqueue(session, "someone-else", {"n": 2})
    clock = Clock()
    worker = Worker(db, {"notify": recorder(seen)}, clock=clock)
    assert await worker.run_until_idle() == 0
    clock.advance(301)
    assert await worker.run_until_idle() == 1
    assert [j.payload for j in seen] == [{"n": 1}]
    [left] = await jobs(db)
    assert (left.kind, left.state, left.attempts) == ("someone-else", JobState.pending, 0)


async def test_a_failing_job_is_retried_with_backoff_then_kept_as_failed(db: Database) -> None:
    attempts: list[int] = []

    async def flaky(job: Job) -> None:
        attempts.append(job.attempt)
        raise ConnectionError(f"upstream refused attempt {job.attempt}")

    async with db.sessionmaker() as session, session.begin():
        await enqueue(session, "push", {"n": 1}, max_attempts=3)
    clock = Clock()
    worker = Worker(db, {"push": flaky}, clock=clock, backoff=Backoff(base=10, cap=3600))

    for attempt, (low, high) in enumerate([(5, 10), (10, 20)], start=1):
        assert await worker.run_once() == 1
        [job] = await jobs(db)
        waited = (job.run_after - clock.now).total_seconds()
        assert job.state == JobState.pending
        assert job.attempts == attempt
        assert low <= waited <= high, (attempt, waited)
        assert job.last_error == f"ConnectionError: upstream refused attempt {attempt}"
        # Not before its time...
        clock.advance(low - 1)
        assert await worker.run_once() == 0
        clock.advance(high - low + 1)
    # ...and the third failure is the last.
    assert await worker.run_once() == 1
    [job] = await jobs(db)
    assert (job.state, job.attempts) == (JobState.failed, 3)
    assert job.last_error == "ConnectionError: upstream refused attempt 3"
    clock.advance(10 * 3600)
    assert await worker.run_once() == 0
    assert attempts == [1, 2, 3]


async def test_a_permanent_failure_and_a_timeout_fail_as_told(db: Database) -> None:
    async def refuse(job: Job) -> None:
        raise PermanentFailure("site 42 no longer exists")

    async def hang(job: Job) -> None:
        await asyncio.sleep(10)

    async with db.sessionmaker() as session, session.begin():
        await enqueue(session, "refuse", {})
        await enqueue(session, "hang", {}, max_attempts=1)
    worker = Worker(db, {"refuse": refuse, "hang": hang}, timeout=0.05)
    assert await worker.run_until_idle() == 2
    assert [(j.kind, j.state, j.attempts, j.last_error) for j in await jobs(db)] == [
        ("refuse", JobState.failed, 1, "PermanentFailure: site 42 no longer exists"),
        ("hang", JobState.failed, 1, "TimeoutError: the handler ran past the worker's timeout"),
    ]


async def test_the_job_of_a_worker_that_died_comes_back_after_its_lease(db: Database) -> None:
    seen: list[Job] = []
    async with db.sessionmaker() as session, session.begin():
        await enqueue(session, "notify", {"n": 1})
    clock = Clock()
    # The first worker claims the job and dies before running it.
    dead = Worker(db, {"notify": recorder(seen)}, clock=clock, timeout=60)
    assert len(await dead.claim(10)) == 1
    survivor = Worker(db, {"notify": recorder(seen)}, clock=clock, timeout=60)
    assert await survivor.run_until_idle() == 0  # still leased
    clock.advance(dead.lease.total_seconds() + 1)
    assert await survivor.run_until_idle() == 1
    assert [j.attempt for j in seen] == [2]
    assert await jobs(db) == []


async def test_a_kind_with_its_own_timeout_runs_and_is_leased_that_long(db: Database) -> None:
    started = asyncio.Event()

    async def slow(job: Job) -> None:
        started.set()
        await asyncio.sleep(0.2)

    async with db.sessionmaker() as session, session.begin():
        await enqueue(session, "import", {}, max_attempts=1)
        await enqueue(session, "notify", {})
    clock = Clock()
    worker = Worker(
        db, {"import": slow, "notify": slow}, clock=clock, timeout=0.05, timeouts={"import": 600}
    )
    running = asyncio.create_task(worker.run_once())
    await started.wait()  # claimed, running for 0.2 s
    assert (await jobs(db))[0].run_after - clock.now >= timedelta(seconds=600)
    assert await running == 2
    # The import ran its 0.2 s; the other kind was cut at the worker's 0.05 s.
    assert [(j.kind, j.state) for j in await jobs(db)] == [("notify", JobState.pending)]


async def test_a_worker_whose_lease_ended_does_not_overwrite_the_next_claim(db: Database) -> None:
    release = {1: asyncio.Event(), 2: asyncio.Event()}
    started = {1: asyncio.Event(), 2: asyncio.Event()}

    async def slow(job: Job) -> None:
        started[job.attempt].set()
        await release[job.attempt].wait()
        if job.attempt == 2:
            raise ConnectionError("down")

    async with db.sessionmaker() as session, session.begin():
        await enqueue(session, "push", {"n": 1})
    clock = Clock()
    late = Worker(db, {"push": slow}, clock=clock, timeout=60)
    first = asyncio.create_task(late.run_once())
    await started[1].wait()
    clock.advance(late.lease.total_seconds() + 1)
    second = asyncio.create_task(Worker(db, {"push": slow}, clock=clock).run_once())
    await started[2].wait()
    # The late worker's success is not recorded over the second claim...
    release[1].set()
    assert await first == 1
    [job] = await jobs(db)
    assert (job.state, job.attempts) == (JobState.running, 2)
    # ...whose own outcome is.
    release[2].set()
    assert await second == 1
    [job] = await jobs(db)
    assert (job.state, job.attempts, job.last_error) == (
        JobState.pending,
        2,
        "ConnectionError: down",
    )


async def test_a_last_attempt_that_never_finished_fails_without_running_again(
    db: Database,
) -> None:
    seen: list[Job] = []
    async with db.sessionmaker() as session, session.begin():
        await enqueue(session, "notify", {"n": 1}, max_attempts=1)
    clock = Clock()
    dead = Worker(db, {"notify": recorder(seen)}, clock=clock)
    await dead.claim(1)
    clock.advance(dead.lease.total_seconds() + 1)
    assert await Worker(db, {"notify": recorder(seen)}, clock=clock).run_until_idle() == 1
    assert seen == []
    [job] = await jobs(db)
    assert job.state == JobState.failed
    assert job.last_error.startswith("LostAttempt: the last attempt did not finish")


async def test_workers_sharing_the_queue_never_run_a_job_twice(url: str, db: Database) -> None:
    """Four workers, each with its own engine (as separate processes would
    have), drain 300 jobs: every job runs exactly once. On PostgreSQL the
    claim's FOR UPDATE SKIP LOCKED keeps them apart; on SQLite, its one writer."""
    async with db.sessionmaker() as session, session.begin():
        for n in range(300):
            await enqueue(session, "notify", {"n": n})
    seen: list[Job] = []

    async def handle(job: Job) -> None:
        seen.append(job)
        await asyncio.sleep(0.001)  # let the other workers claim meanwhile

    databases = [Database(url, pool_size=2) for _ in range(4)]
    try:
        workers = [Worker(d, {"notify": handle}, concurrency=5) for d in databases]
        ran = await asyncio.gather(*(w.run_until_idle() for w in workers))
    finally:
        for d in databases:
            await d.dispose()
    assert sorted(j.payload["n"] for j in seen) == list(range(300))
    assert sum(ran) == 300
    assert all(n > 0 for n in ran), ran  # they did share the work
    assert await jobs(db) == []

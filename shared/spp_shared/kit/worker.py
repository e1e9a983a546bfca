"""The worker: runs the outbox's jobs, at least once, with retries.

A worker claims a few due jobs in one short transaction (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so workers sharing the queue never claim the same
job; SQLite has one writer at a time, which serialises claims by itself). A
claim moves the job to ``running`` with a lease: if the worker dies, the
lease ends and another worker takes the job again. The handler then runs
outside any transaction (a slow handler holds no lock, which matters on
SQLite), and a second short transaction records the outcome: success deletes
the job, a failure schedules the next attempt with exponential backoff, and
the last failure leaves the job ``failed`` for an admin to see
(``GET /v1/<service>/jobs?state=failed``, ``spp_outbox_jobs`` in /metrics).

At least once means a handler may run twice for one job (a worker stopped
between the handler and the record, a lease that ended while the handler was
still running): handlers must be idempotent.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import case, delete, select, update
from sqlalchemy.exc import SQLAlchemyError

from spp_shared.kit.db import Database
from spp_shared.kit.outbox import JOBS, MAX_ERROR_LENGTH, JobState

log = structlog.get_logger("spp.worker")


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed job, as its handler sees it."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempt: int  # 1 on the first run
    max_attempts: int


Handler = Callable[[Job], Awaitable[None]]


class PermanentFailure(Exception):
    """Raised by a handler when another attempt cannot help (a malformed
    payload, an object that no longer exists): the job fails at once."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits between half and all
    of ``base * 2**(n-1)`` seconds, at most ``cap``. The jitter spreads the
    retries of jobs that failed together (an SMTP server that was down)."""

    base: float = 10.0
    cap: float = 3600.0

    def delay(self, attempt: int) -> float:
        full = min(self.cap, self.base * 2 ** max(0, attempt - 1))
        return full / 2 + random.uniform(0, full / 2)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Claims and runs the jobs of ``handlers``' kinds from one service's outbox.

    A job of a kind this worker has no handler for is left alone (another
    version of the service may know it; it shows as pending in /metrics).
    """

    def __init__(
        self,
        db: Database,
        handlers: Mapping[str, Handler],
        *,
        concurrency: int = 4,
        timeout: float = 60.0,
        timeouts: Mapping[str, float] | None = None,
        backoff: Backoff = Backoff(),
        clock: Callable[[], datetime] = _utcnow,
        name: str | None = None,
    ) -> None:
        self.db = db
        self.handlers = dict(handlers)
        self.concurrency = concurrency
        self.timeout = timeout
        # Kinds whose jobs run longer than ``timeout`` (a bulk import): their own.
        self.timeouts = dict(timeouts or {})
        # The handler is cut at its timeout; the lease leaves room to record the
        # outcome, so a live worker's job is never taken by another.
        self.lease = timedelta(seconds=timeout + 30)
        self.backoff = backoff
        self.clock = clock
        self.name = name or worker_name()
        self._tokens: dict[int, str] = {}  # job id -> the claim it was taken under

    async def claim(self, limit: int) -> list[Job]:
        """Take up to ``limit`` due jobs: pending ones whose time has come, and
        running ones whose lease has ended (their worker is gone)."""
        now = self.clock()
        is_due = (
            JOBS.c.state.in_([JobState.pending, JobState.running]),
            JOBS.c.run_after <= now,
            JOBS.c.kind.in_(sorted(self.handlers)),
        )
        # An idle queue is polled with a read: on SQLite the claim below takes
        # the one write lock, on PostgreSQL it is a write transaction.
        async with self.db.read_engine.connect() as conn:
            if (await conn.execute(select(JOBS.c.id).where(*is_due).limit(1))).first() is None:
                return []
        token = f"{self.name}:{secrets.token_hex(6)}"
        due = (
            select(JOBS.c.id)
            .where(*is_due)
            .order_by(JOBS.c.run_after, JOBS.c.id)
            .limit(limit)
            # Rows another worker is claiming are skipped, not waited for
            # (PostgreSQL; SQLite renders nothing: its writer lock serialises).
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(JOBS)
            .where(JOBS.c.id.in_(due))
            .values(
                state=JobState.running,
                attempts=JOBS.c.attempts + 1,
                run_after=self._lease_end(now),
                claimed_by=token,
                updated_at=now,
            )
            .returning(JOBS.c.id, JOBS.c.kind, JOBS.c.payload, JOBS.c.attempts, JOBS.c.max_attempts)
        )
        async with self.db.engine.begin() as conn:
            rows = (await conn.execute(claim)).all()
        jobs = []
        for row in sorted(rows, key=lambda r: r.id):
            jobs.append(Job(row.id, row.kind, row.payload, row.attempts, row.max_attempts))
            self._tokens[row.id] = token
        return jobs

    def _lease_end(self, now: datetime) -> Any:
        if not self.timeouts:
            return now + self.lease
        ends = {k: now + timedelta(seconds=t + 30) for k, t in self.timeouts.items()}
        return case(ends, value=JOBS.c.kind, else_=now + self.lease)

    async def run_once(self) -> int:
        """Claim a batch of due jobs and run them; how many were claimed."""
        jobs = await self.claim(self.concurrency)
        if jobs:
            await asyncio.gather(*(self._run(job) for job in jobs))
        return len(jobs)

    async def run_until_idle(self) -> int:
        """Run batches until no job is due; how many jobs ran (``worker --once``)."""
        total = 0
        while n := await self.run_once():
            total += n
        return total

    async def run(self, stop: asyncio.Event, *, poll_seconds: float = 1.0) -> None:
        """Run until ``stop`` is set; the jobs in hand are finished first."""
        pause = poll_seconds
        while not stop.is_set():
            try:
                claimed = await self.run_once()
            except (SQLAlchemyError, OSError) as exc:
                # The database restarting must not end the worker: wait, retry.
                log.warning("worker_database_error", error=type(exc).__name__, retry_in=pause)
                claimed = 0
                pause = min(pause * 2, 30.0)
            else:
                pause = poll_seconds
            if claimed < self.concurrency:
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)

    async def _run(self, job: Job) -> None:
        token = self._tokens.pop(job.id)
        if job.attempt > job.max_attempts:
            # Its last attempt's lease ended without an outcome: the worker
            # died, possibly because of this very job. No more attempts.
            await self._record_failure(job, token, _LOST, final=True)
            return
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeouts.get(job.kind, self.timeout)):
                await self.handlers[job.kind](job)
        except PermanentFailure as exc:
            await self._record_failure(job, token, exc, final=True)
        except Exception as exc:
            # Whatever a handler raises is this job's failure, recorded and
            # retried; it must not end the worker and the other jobs with it.
            final = job.attempt >= job.max_attempts
            await self._record_failure(job, token, exc, final=final)
        else:
            await self._record_success(job, token, time.perf_counter() - started)

    def _mine(self, job: Job, token: str) -> Any:
        # A claim that is no longer ours (its lease ended and another worker
        # took the job) must not overwrite that worker's outcome.
        return (
            (JOBS.c.id == job.id)
            & (JOBS.c.claimed_by == token)
            & (JOBS.c.state == JobState.running)
        )

    async def _record_success(self, job: Job, token: str, seconds: float) -> None:
        async with self.db.engine.begin() as conn:
            await conn.execute(delete(JOBS).where(self._mine(job, token)))
        log.info("job_done", job_id=job.id, kind=job.kind, attempt=job.attempt, seconds=seconds)

    async def _record_failure(
        self, job: Job, token: str, error: BaseException, *, final: bool
    ) -> None:
        now = self.clock()
        values: dict[str, Any] = {"last_error": _describe(error), "updated_at": now}
        if final:
            values["state"] = JobState.failed
        else:
            delay = self.backoff.delay(job.attempt)
            values |= {"state": JobState.pending, "run_after": now + timedelta(seconds=delay)}
        async with self.db.engine.begin() as conn:
            await conn.execute(update(JOBS).where(self._mine(job, token)).values(**values))
        # The error's text stays in the table (admins only): it may quote an
        # address or a payload, which are personal data and stay out of logs.
        event = "job_failed" if final else "job_retry"
        log.warning(
            event, job_id=job.id, kind=job.kind, attempt=job.attempt, error=type(error).__name__
        )


class LostAttempt(Exception):
    """The last attempt's lease ended without an outcome."""


_LOST = LostAttempt("the last attempt did not finish (its worker stopped or was cut off)")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "TimeoutError: the handler ran past the worker's timeout"
    text = str(exc)
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return described[:MAX_ERROR_LENGTH]

"""The outbox: jobs written in the same transaction as the change that causes them.

A service calls :func:`enqueue` with the session of its change. The job is a
row of ``outbox_jobs`` in that transaction, so a rolled-back change leaves no
job behind and a committed change cannot lose its job. ``python -m spp_<name>
worker`` runs the jobs (:mod:`spp_shared.kit.worker`).

Delivery is at least once: a worker that stops after running a job but before
recording it leaves the job to run again once its lease ends. Every handler
must therefore be idempotent: running a job twice has the effect of running
it once (an upsert rather than an insert, a message id the receiver can
deduplicate on, a check of what is already done).

Each service declares the table in its own metadata with :func:`outbox_table`
(so its Alembic history creates it); the statements here use the kit's own
copy of the same definition, so callers need not pass the table around.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from spp_shared.contracts.jobs import JobState
from spp_shared.kit.db import Database, UTCDateTime, WriteSession, new_metadata
from spp_shared.kit.pagination import keyset_slice
from spp_shared.kit.retention import delete_in_batches

TABLE_NAME = "outbox_jobs"
MAX_KIND_LENGTH = 100
MAX_ERROR_LENGTH = 2000
# Ten attempts with the worker's default backoff (10 s doubling, jittered,
# capped at an hour) span 45 to 85 minutes: an SMTP or upstream outage of
# that length is survived without anyone stepping in.
DEFAULT_MAX_ATTEMPTS = 10


_KIT_METADATA = new_metadata()

JOBS = Table(
    TABLE_NAME,
    _KIT_METADATA,
    # SQLite would reuse the id of a deleted last row: an admin reading "job 12
    # failed" in a log must find that job, not a later one.
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("kind", String(MAX_KIND_LENGTH), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    # Pending: not before. Running: the end of the claim's lease, after which
    # another worker takes the job again (its worker is presumed dead).
    Column("run_after", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # Who holds the current claim (host, pid and a random token): a worker
    # records the outcome only of a claim that is still its own.
    Column("claimed_by", String(200), nullable=True),
    Column("last_error", String(MAX_ERROR_LENGTH), nullable=True),
    CheckConstraint(
        "state IN ('pending', 'running', 'failed')",
        name="state",
    ),
    CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="attempts"),
    # The workers' claim: due jobs of a state, oldest first.
    Index("ix_outbox_jobs_state_run_after", "state", "run_after"),
    sqlite_autoincrement=True,
)


def outbox_table(metadata: MetaData) -> Table:
    """The outbox table, declared in a service's own metadata (Alembic sees it there)."""
    return JOBS.to_metadata(metadata)


def _now() -> datetime:
    return datetime.now(UTC)


async def enqueue(
    session: WriteSession,
    kind: str,
    payload: Mapping[str, Any],
    *,
    delay: timedelta = timedelta(0),
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> int:
    """Add a job to the outbox in ``session``'s transaction; its id.

    The job commits with the session (and is rolled back with it). ``payload``
    is stored as JSON: ids and small values, not large documents; a handler
    that needs the current state of an object reads it when it runs.
    """
    if not 0 < len(kind) <= MAX_KIND_LENGTH:
        raise ValueError(f"a job kind has 1-{MAX_KIND_LENGTH} characters")
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    now = _now()
    result = await session.execute(
        insert(JOBS)
        .values(
            kind=kind,
            payload=dict(payload),
            state=JobState.pending,
            attempts=0,
            max_attempts=max_attempts,
            run_after=now + delay,
            created_at=now,
            updated_at=now,
        )
        .returning(JOBS.c.id)
    )
    return int(result.scalar_one())


async def list_jobs(
    session: AsyncSession,
    *,
    state: JobState | None,
    kind: str | None,
    after: int | None,
    limit: int,
) -> list[Row[Any]]:
    """Up to ``limit`` jobs, newest first, past the job ``after``."""
    # Not the payload: it may hold citizens' words, and the list does not show it.
    shown = [c for c in JOBS.c if c.name not in ("payload", "claimed_by")]
    query = select(*shown)
    if state is not None:
        query = query.where(JOBS.c.state == state)
    if kind is not None:
        query = query.where(JOBS.c.kind == kind)
    query = keyset_slice(query, [JOBS.c.id], after, limit, descending=True)
    return list((await session.execute(query)).all())


async def count_by_state(session: AsyncSession) -> dict[tuple[str, str], int]:
    """How many jobs of each (kind, state): the backlog and the failures."""
    rows = await session.execute(
        select(JOBS.c.kind, JOBS.c.state, func.count()).group_by(JOBS.c.kind, JOBS.c.state)
    )
    return {(kind, state): int(n) for kind, state, n in rows}


async def purge_failed(
    db: Database, *, older_than: timedelta, now: datetime | None = None, **bounds: Any
) -> int:
    """Delete the jobs that failed more than ``older_than`` ago (``purge-jobs``)."""
    cutoff = (now or _now()) - older_than
    where = (JOBS.c.state == JobState.failed) & (JOBS.c.updated_at < cutoff)
    return await delete_in_batches(db, JOBS, where, **bounds)

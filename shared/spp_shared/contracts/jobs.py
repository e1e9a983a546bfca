"""What an admin reads of a service's background jobs (the outbox), and who may."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from spp_shared.contracts.permissions import ADMIN, Action


class JobsAction(Action):
    """What the kit's outbox serves in every service, and who may (the matrix's rows)."""

    jobs_read = (
        "jobs:read",
        "read a service's background jobs (failed ones kept for review)",
        ADMIN,
    )


class JobState(StrEnum):
    """Where a job is. A job that succeeds is deleted: a service's outbox
    holds only work still to do, and the failures an admin has to look at."""

    pending = "pending"  # waiting for ``run_after``
    running = "running"  # claimed by a worker until ``run_after`` (its lease)
    failed = "failed"  # gave up after ``max_attempts``; kept for an admin


class JobOut(BaseModel):
    """One job, without its payload (it may hold citizens' words)."""

    id: int
    kind: str = Field(examples=["send_email"])
    state: JobState
    attempts: int = Field(description="Runs started so far.")
    max_attempts: int
    run_after: datetime = Field(
        description="Pending: not before. Running: the end of the worker's lease."
    )
    created_at: datetime
    updated_at: datetime
    last_error: str | None = Field(
        default=None, description="The last attempt's error, as the handler raised it."
    )

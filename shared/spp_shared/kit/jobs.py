"""What an admin sees of a service's outbox: ``GET /v1/<service>/jobs``.

Every service includes this router (the app factory does), so failed jobs
are never silent: ``?state=failed`` lists them with their last error, and
``spp_outbox_jobs`` in /metrics counts them by kind and state.
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Query
from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request

from spp_shared.contracts.jobs import JobOut, JobsAction, JobState
from spp_shared.kit import outbox
from spp_shared.kit.db import Database, ReadSessionDep
from spp_shared.kit.pagination import DEFAULT_LIMIT, Keyset, Page, as_integer
from spp_shared.kit.params import Cursor, Limit
from spp_shared.kit.permissions import allowed

log = structlog.get_logger("spp.jobs")

BY_JOB_ID: Keyset[int] = Keyset(as_integer)
"""Jobs by id, newest first."""


# The OpenAPI description of the tag every service's jobs route shares.
TAGS = {
    "jobs": "Background jobs of each service's outbox (e-mails, pushes to other "
    "services): what is still to run and what failed, for programme admins."
}


def jobs_router(service: str) -> APIRouter:
    """The admin's list of ``service``'s jobs, at ``/v1/<service>/jobs``."""
    router = APIRouter(prefix=f"/v1/{service}", tags=["jobs"])

    @router.get(
        "/jobs",
        # One operation id per service: the gateway merges the four documents.
        name=f"list_{service}_jobs",
        summary=f"Background jobs of the {service} service (programme admins)",
        description=(
            "Jobs still to run and jobs that failed after their last attempt, "
            "newest first. Succeeded jobs are deleted, so `state=failed` is what "
            "needs attention. The payload is not shown."
        ),
        dependencies=[allowed(JobsAction.jobs_read)],
    )
    async def list_jobs(
        session: ReadSessionDep,
        state: JobState | None = None,
        kind: Annotated[str | None, Query(max_length=outbox.MAX_KIND_LENGTH)] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[JobOut]:
        return await BY_JOB_ID.page(
            Page[JobOut],
            cursor=cursor,
            limit=limit,
            read=lambda after, n: outbox.list_jobs(
                session, state=state, kind=kind, after=after, limit=n
            ),
            out=lambda row: JobOut.model_validate(row, from_attributes=True),
            key=lambda row: int(row.id),
        )

    return router


class JobGauge:
    """``spp_outbox_jobs{service,kind,state}``, counted in the database at each
    scrape: the workers are other processes, so only the table knows."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.gauge = Gauge(
            "spp_outbox_jobs",
            "Outbox jobs by kind and state (failed: gave up, needs an admin)",
            ["service", "kind", "state"],
            registry=registry,
        )

    async def refresh(self, request: Request) -> None:
        db: Database = request.app.state.db
        try:
            async with db.read_sessionmaker() as session:
                counts = await outbox.count_by_state(session)
        except (SQLAlchemyError, OSError) as exc:
            # /metrics still answers (request figures) when the database does not.
            log.warning("job_count_unavailable", error=type(exc).__name__)
            return
        self.gauge.clear()  # a kind and state with no job left reads absent, not stale
        for (kind, state), n in counts.items():
            self.gauge.labels(self.service, kind, state).set(n)

"""The worker's side of a background import (``async=true``): run it, record its outcome."""

from __future__ import annotations

from typing import Any

from spp_shared.contracts.sites import ImportReport
from spp_shared.kit.db import Database, WriteSession
from spp_shared.kit.errors import Problem
from spp_shared.kit.identity import Principal
from spp_shared.kit.ingest import Container
from spp_shared.kit.ingest.jobs import claim_import, record_outcome, uploaded_file
from spp_shared.kit.memory import release_memory
from spp_shared.kit.worker import Handler, Job
from spp_sites.importer.engine import run_import
from spp_sites.importer.http import IMPORT_JOB, import_outcome, status_url
from spp_sites.settings import SitesSettings


def import_handlers(settings: SitesSettings, db: Database) -> dict[str, Handler]:
    """The sites worker's jobs: imports sent with ``async=true``."""

    async def run(job: Job) -> None:
        await run_import_job(db, settings, str(job.payload["import_id"]))

    return {IMPORT_JOB: run}


def import_timeouts(settings: SitesSettings) -> dict[str, float]:
    return {IMPORT_JOB: settings.import_job_timeout_seconds}


async def run_import_job(db: Database, settings: SitesSettings, import_id: str) -> None:
    """Run one stored import, once: a job delivered again after it finished does nothing.

    A committed import records its report in its own transaction; any other
    outcome (a dry run, rejected rows, a file that cannot be read, a
    concurrent write) is recorded afterwards, as the problem or report a
    synchronous import would have answered.
    """
    row = await claim_import(db, import_id)
    if row is None:
        return
    params: dict[str, Any] = row["params"]
    principal = Principal.model_validate(params["principal"])
    instance = status_url(import_id)

    async def record(session: WriteSession, report: ImportReport) -> None:
        await record_outcome(session, import_id, 200, report.model_dump(mode="json"))

    try:
        async with uploaded_file(db, import_id) as path:
            report = await run_import(
                db,
                path,
                Container(row["container"]),
                principal,
                dry_run=params["dry_run"],
                keep_valid=params["keep_valid"],
                batch_size=settings.import_batch_size,
                before_commit=record,
            )
    except Problem as exc:
        status, body = exc.status, exc.to_body(instance)
    else:
        if report.committed:
            return  # recorded with the import itself
        status, body = import_outcome(
            report, keep_valid=params["keep_valid"], instance=instance, request_id=None
        )
    finally:
        release_memory()
    async with db.sessionmaker() as session:
        await record_outcome(session, import_id, status, body)
        await session.commit()

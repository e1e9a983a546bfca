"""``POST /v1/sites/import``: spool the body, run the import or store it for the
worker, answer; ``GET /v1/sites/import/{id}``: where a background import is
(the routes authorise)."""

from __future__ import annotations

from typing import Any, Final

from fastapi import Request
from sqlalchemy.engine import RowMapping
from starlette.responses import Response

from spp_shared.contracts.ingest import ImportJob
from spp_shared.contracts.sites import ImportReport
from spp_shared.kit.db import Database
from spp_shared.kit.errors import NotFound, ProblemResponse, problem_body, request_id_of
from spp_shared.kit.identity import Principal, Role
from spp_shared.kit.ingest import Upload, spooled_body
from spp_shared.kit.ingest.jobs import get_import, store_upload
from spp_shared.kit.memory import release_memory
from spp_sites.importer.engine import run_import
from spp_sites.settings import SitesSettings

IMPORT_JOB: Final = "sites.import"


def status_url(import_id: str) -> str:
    return f"/v1/sites/import/{import_id}"


async def run_import_request(
    request: Request,
    db: Database,
    settings: SitesSettings,
    principal: Principal,
    *,
    dry_run: bool,
    keep_valid: bool,
    background: bool = False,
) -> Response:
    try:
        async with spooled_body(request, settings.import_max_bytes) as upload:
            if background:
                return await _store(db, upload, principal, dry_run, keep_valid)
            report = await run_import(
                db,
                upload.path,
                upload.container,
                principal,
                dry_run=dry_run,
                keep_valid=keep_valid,
                batch_size=settings.import_batch_size,
            )
    finally:
        # The batches are freed; hand their pages back to the OS (the RSS).
        release_memory()
    status, body = import_outcome(
        report, keep_valid=keep_valid, instance=request.url.path, request_id=request_id_of(request)
    )
    if status == 200:
        return Response(report.model_dump_json(), media_type="application/json")
    return ProblemResponse(body, status_code=status)


def import_outcome(
    report: ImportReport, *, keep_valid: bool, instance: str, request_id: str | None
) -> tuple[int, dict[str, Any]]:
    """What an import answers: 200 and its report, or 422 and a problem whose
    ``errors`` are the rejected rows (the whole report alongside)."""
    if report.committed or report.dry_run or report.rejected == 0:
        return 200, report.model_dump(mode="json")
    verb = "was" if report.rejected == 1 else "were"
    counted = f"{report.rejected} of {report.rows} rows {verb} rejected"
    if keep_valid:
        detail = f"{counted}; the valid rows changed nothing, so nothing was written."
    else:
        detail = f"{counted}; nothing was written (send keep_valid=true to write the valid rows)."
    body = problem_body(
        status=422,
        type_="import-rejected",
        title="The import was rejected",
        detail=detail,
        instance=instance,
        errors=[issue.model_dump() for issue in report.rejected_rows],
        **({"request_id": request_id} if request_id else {}),
        **report.model_dump(mode="json"),
    )
    return 422, body


def _job_out(row: RowMapping) -> ImportJob:
    return ImportJob.model_validate(dict(row))


async def _store(
    db: Database, upload: Upload, principal: Principal, dry_run: bool, keep_valid: bool
) -> Response:
    """202: the upload is in the database and its job queued, in one transaction."""
    params = {
        "dry_run": dry_run,
        "keep_valid": keep_valid,
        # Who asked: the worker imports with the caller's rights, not its own.
        "principal": principal.model_dump(mode="json", exclude={"expires_at"}),
    }
    async with db.sessionmaker() as session:
        import_id = await store_upload(
            session, upload, kind=IMPORT_JOB, owner=principal.subject, params=params
        )
        await session.commit()
        row = await get_import(session, import_id)
    assert row is not None
    url = status_url(import_id)
    return Response(
        _job_out(row).model_dump_json(),
        status_code=202,
        media_type="application/json",
        headers={"Location": url, "Content-Location": url},
    )


async def import_status(db: Database, principal: Principal, import_id: str) -> ImportJob:
    """A background import, for the caller who sent it (or a programme admin)."""
    async with db.read_sessionmaker() as session:
        row: RowMapping | None = await get_import(session, import_id)
    if row is None or not (
        row["owner"] == principal.subject or principal.has_role(Role.programme_admin)
    ):
        raise NotFound(f"No import {import_id} of yours.")
    return _job_out(row)

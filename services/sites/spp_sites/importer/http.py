"""``POST /v1/sites/import``: spool the body, run the import, answer (the route authorises)."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from spp_shared.contracts.sites import ImportReport
from spp_shared.kit.errors import ProblemResponse, problem_body, request_id_of
from spp_shared.kit.identity import Principal
from spp_shared.kit.ingest import spooled_body
from spp_shared.kit.memory import release_memory
from spp_sites.importer.engine import run_import


async def run_import_request(
    request: Request, principal: Principal, *, dry_run: bool, keep_valid: bool
) -> Response:
    settings = request.app.state.settings
    try:
        async with spooled_body(request, settings.import_max_bytes) as upload:
            report = await run_import(
                request.app.state.db,
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
    if report.committed or report.dry_run or report.rejected == 0:
        return Response(report.model_dump_json(), media_type="application/json")
    return _rejected_problem(request, report, keep_valid=keep_valid)


def _rejected_problem(request: Request, report: ImportReport, *, keep_valid: bool) -> Response:
    """422 problem: the rejected rows as ``errors``, the whole report alongside."""
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
        instance=request.url.path,
        errors=[issue.model_dump() for issue in report.rejected_rows],
        request_id=request_id_of(request),
        **report.model_dump(mode="json"),
    )
    return ProblemResponse(body, status_code=422)

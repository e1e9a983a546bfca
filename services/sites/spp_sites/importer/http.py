"""``POST /v1/sites/import``: authorise, spool the body, run the import."""

from __future__ import annotations

from fastapi import Request

from spp_shared.contracts.sites import ImportReport
from spp_shared.kit.errors import Forbidden
from spp_shared.kit.identity import Principal, Role
from spp_sites.importer.body import spooled_body
from spp_sites.importer.engine import run_import
from spp_sites.permissions import ensure_authenticated


def ensure_may_import(principal: Principal) -> None:
    ensure_authenticated(principal)
    if principal.is_admin:
        return
    if not (principal.has_role(Role.network_manager) and principal.network):
        raise Forbidden("Only programme admins and network managers may import sites.")


async def run_import_request(
    request: Request, principal: Principal, *, dry_run: bool, keep_valid: bool
) -> ImportReport:
    ensure_may_import(principal)
    settings = request.app.state.settings
    async with spooled_body(request, settings.import_max_bytes) as upload:
        return await run_import(
            request.app.state.db,
            upload.path,
            upload.container,
            principal,
            dry_run=dry_run,
            keep_valid=keep_valid,
            batch_size=settings.import_batch_size,
        )

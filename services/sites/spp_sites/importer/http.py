"""Placeholder replaced by the importer implementation."""

from __future__ import annotations

from fastapi import Request

from spp_shared.contracts.sites import ImportReport
from spp_shared.kit.identity import Principal


async def run_import_request(
    request: Request, principal: Principal, *, dry_run: bool, keep_valid: bool
) -> ImportReport:
    raise NotImplementedError

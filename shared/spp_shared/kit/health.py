"""Liveness and readiness endpoints every service exposes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from spp_shared.kit.db import DatabaseDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive", operation_id="healthz")
async def healthz(request: Request) -> dict[str, str]:
    return {"status": "ok", "service": request.app.state.service_name}


@router.get("/readyz", summary="The service can reach its database", operation_id="readyz")
async def readyz(request: Request, db: DatabaseDep) -> JSONResponse:
    try:
        await db.ping()
    except (SQLAlchemyError, OSError) as exc:
        return JSONResponse(
            {
                "status": "unavailable",
                "service": request.app.state.service_name,
                "database": type(exc).__name__,
            },
            status_code=503,
        )
    return JSONResponse(
        {"status": "ok", "service": request.app.state.service_name, "database": "ok"}
    )

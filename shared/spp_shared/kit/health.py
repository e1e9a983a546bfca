"""Liveness and readiness endpoints every service exposes."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from spp_shared.kit.db import DatabaseDep

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    status: Literal["ok"]
    service: str


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    service: str
    database: str = Field(description="'ok', or the kind of error met reaching it.")


@router.get("/healthz", summary="The process is alive", operation_id="healthz")
async def healthz(request: Request) -> Liveness:
    return Liveness(status="ok", service=request.app.state.service_name)


@router.get(
    "/readyz",
    summary="The service can reach its database",
    operation_id="readyz",
    response_model=Readiness,
    # Its own body, not a problem: a probe reads the same shape either way.
    responses={503: {"model": Readiness, "description": "The database cannot be reached"}},
)
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

"""Liveness and readiness endpoints every service exposes."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from spp_shared.kit.db import DatabaseDep

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    status: Literal["ok"]
    service: str


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    service: str
    database: str = Field(
        description="'ok'; 'not migrated' (no schema); else the kind of error met reaching it."
    )


@router.get("/healthz", summary="The process is alive", operation_id="healthz")
async def healthz(request: Request) -> Liveness:
    return Liveness(status="ok", service=request.app.state.service_name)


# Every service's database is migrated by Alembic: a database without its
# version table is one the service was pointed at by mistake (a new SQLite
# file where a path was mistyped), where every request would fail.
_MIGRATED = text("SELECT version_num FROM alembic_version")


@router.get(
    "/readyz",
    summary="The service can reach its database, migrated",
    operation_id="readyz",
    response_model=Readiness,
    # Its own body, not a problem: a probe reads the same shape either way.
    responses={
        503: {"model": Readiness, "description": "The database cannot be reached, or is empty"}
    },
)
async def readyz(request: Request, db: DatabaseDep) -> JSONResponse:
    state = "ok"
    try:
        await db.ping()
    except (SQLAlchemyError, OSError) as exc:
        state = type(exc).__name__
    else:
        try:
            async with db.read_engine.connect() as conn:
                migrated = (await conn.execute(_MIGRATED)).first() is not None
        except SQLAlchemyError:
            migrated = False
        if not migrated:
            state = "not migrated"
    return JSONResponse(
        {
            "status": "ok" if state == "ok" else "unavailable",
            "service": request.app.state.service_name,
            "database": state,
        },
        status_code=200 if state == "ok" else 503,
    )

"""HTTP layer of the indicators service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel
from sqlalchemy import select

from spp_indicators.models import Commitment
from spp_shared.kit.db import ReadSessionDep
from spp_shared.kit.errors import NotFound
from spp_shared.kit.pagination import Page
from spp_shared.kit.permissions import Action, allowed

router = APIRouter(
    prefix="/v1", tags=["commitments"], dependencies=[allowed(Action.commitments_read)]
)


class CommitmentOut(BaseModel):
    number: int
    title: str
    description: str | None


def _out(c: Commitment) -> CommitmentOut:
    return CommitmentOut(number=c.number, title=c.title, description=c.description)


@router.get("/commitments", summary="The eight SP+ commitments")
async def list_commitments(session: ReadSessionDep) -> Page[CommitmentOut]:
    rows = (await session.scalars(select(Commitment).order_by(Commitment.number))).all()
    return Page[CommitmentOut](items=[_out(c) for c in rows])


@router.get("/commitments/{number}", summary="One commitment")
async def get_commitment(
    number: Annotated[int, Path(ge=1, le=8)], session: ReadSessionDep
) -> CommitmentOut:
    commitment = await session.get(Commitment, number)
    if commitment is None:
        raise NotFound(f"No commitment number {number}.")
    return _out(commitment)

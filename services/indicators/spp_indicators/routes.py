"""HTTP layer of the indicators service: parse, call the use case, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from spp_indicators import service
from spp_indicators.serialise import commitment_out
from spp_shared.contracts.indicators import CommitmentOut, IndicatorsAction
from spp_shared.kit.db import ReadSessionDep
from spp_shared.kit.pagination import Page
from spp_shared.kit.permissions import allowed

router = APIRouter(
    prefix="/v1", tags=["commitments"], dependencies=[allowed(IndicatorsAction.commitments_read)]
)
# The OpenAPI document's description of each tag used below.
TAGS = {"commitments": "The eight commitments of the Services Publics+ programme."}


@router.get("/commitments", summary="The eight SP+ commitments")
async def list_commitments(session: ReadSessionDep) -> Page[CommitmentOut]:
    rows = await service.list_commitments(session)
    return Page[CommitmentOut](items=[commitment_out(c) for c in rows])


@router.get("/commitments/{number}", summary="One commitment")
async def get_commitment(
    number: Annotated[int, Path(ge=1, le=8)], session: ReadSessionDep
) -> CommitmentOut:
    return commitment_out(await service.get_commitment(session, number))

"""Use cases of the indicators service. Raises domain errors; never imports FastAPI."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from spp_indicators import repository as repo
from spp_indicators.models import Commitment
from spp_shared.kit.errors import NotFound


async def list_commitments(session: AsyncSession) -> Sequence[Commitment]:
    return await repo.list_commitments(session)


async def get_commitment(session: AsyncSession, number: int) -> Commitment:
    commitment = await repo.get_commitment(session, number)
    if commitment is None:
        raise NotFound(f"No commitment number {number}.")
    return commitment

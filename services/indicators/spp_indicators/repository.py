"""All SQL of the indicators service."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from spp_indicators.models import Commitment


async def list_commitments(session: AsyncSession) -> Sequence[Commitment]:
    return (await session.scalars(select(Commitment).order_by(Commitment.number))).all()


async def get_commitment(session: AsyncSession, number: int) -> Commitment | None:
    return await session.get(Commitment, number)

"""Reference data of the indicators service: the eight commitments."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from spp_indicators import repository as repo
from spp_indicators.models import Commitment
from spp_shared.contracts.types import COMMITMENTS

# The measurable promises DOMAIN.md attaches to some commitments.
DESCRIPTIONS: dict[int, str] = {
    4: "Accusé de réception sous une semaine pour une demande électronique, "
    "deux semaines pour un courrier.",
    6: "Résultats publiés au moins une fois par an, au niveau local pertinent, "
    "sur place et en ligne.",
    7: "Chaque expérience publiée reçoit une réponse.",
}


async def seed_commitments(session: AsyncSession) -> None:
    existing = {c.number: c for c in await repo.list_commitments(session)}
    for number, title in COMMITMENTS.items():
        row = existing.get(number)
        if row is None:
            session.add(
                Commitment(number=number, title=title, description=DESCRIPTIONS.get(number))
            )
        else:
            row.title = title
    await session.flush()

"""What a client reads of a commitment: its contract shape. Plain functions, no queries."""

from __future__ import annotations

from spp_indicators.models import Commitment
from spp_shared.contracts.indicators import CommitmentOut


def commitment_out(c: Commitment) -> CommitmentOut:
    return CommitmentOut(number=c.number, title=c.title, description=c.description)

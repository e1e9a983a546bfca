"""Public request and response models of the indicators service, and its actions."""

from __future__ import annotations

from pydantic import BaseModel

from spp_shared.contracts.permissions import PUBLIC, Action


class IndicatorsAction(Action):
    """What a caller can ask of the indicators service, and who may (the matrix's rows)."""

    commitments_read = "commitments:read", "read the eight commitments", PUBLIC


class CommitmentOut(BaseModel):
    number: int
    title: str
    description: str | None

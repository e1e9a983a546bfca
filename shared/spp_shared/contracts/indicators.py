"""Public request and response models of the indicators service."""

from __future__ import annotations

from pydantic import BaseModel


class CommitmentOut(BaseModel):
    number: int
    title: str
    description: str | None

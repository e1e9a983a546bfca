"""Tables of the indicators service."""

from __future__ import annotations

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from spp_shared.kit.db import new_metadata
from spp_shared.kit.outbox import outbox_table


class Base(DeclarativeBase):
    metadata = new_metadata()


class Commitment(Base):
    """One of the eight SP+ commitments (reference data, DOMAIN.md)."""

    __tablename__ = "commitments"

    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)


# Jobs written with the changes that cause them (kit/outbox.py).
outbox_jobs = outbox_table(Base.metadata)

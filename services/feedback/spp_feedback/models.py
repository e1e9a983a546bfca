"""Tables of the feedback service."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from spp_shared.kit.db import new_metadata
from spp_shared.kit.outbox import outbox_table


class Base(DeclarativeBase):
    metadata = new_metadata()


# Jobs written with the changes that cause them (kit/outbox.py).
outbox_jobs = outbox_table(Base.metadata)

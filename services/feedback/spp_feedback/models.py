"""Tables of the feedback service."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from spp_shared.kit.db import new_metadata


class Base(DeclarativeBase):
    metadata = new_metadata()

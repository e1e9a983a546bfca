"""Tables of the feedback service."""

from __future__ import annotations

from spp_shared.kit.db import new_metadata
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    metadata = new_metadata()

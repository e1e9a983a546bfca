"""Columns most tables share, declared once: a ULID id, when a row was
created and last changed, and the version If-Match and ETags name.

Mixed into a service's declarative models::

    class Site(UlidPrimaryKey, Versioned, Base): ...

A model may redeclare a column the mixin gives (a server default its first
migration had): the model's own declaration wins.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from spp_shared.kit.db import UTCDateTime
from spp_shared.kit.ids import ULID_LENGTH, new_ulid


class UlidPrimaryKey:
    """``id``: a ULID, sortable by creation (a keyset's tie-breaker)."""

    id: Mapped[str] = mapped_column(String(ULID_LENGTH), primary_key=True, default=new_ulid)


class Timestamps:
    """``created_at`` and ``updated_at``, timezone-aware UTC on both databases."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Versioned(Timestamps):
    """``version``, 1 at creation and one more at each change: what an ETag
    names and an If-Match checks."""

    version: Mapped[int] = mapped_column(Integer, default=1)

    def changed(self, at: datetime | None = None) -> None:
        """Record a change of the row's content (its ETag changes with it)."""
        self.updated_at = at or datetime.now(UTC)
        self.version += 1

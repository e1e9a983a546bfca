"""Tables of the gateway's own database: API keys, agents' role mappings, audit log.

No idempotency table: the only creating POST that could want one is the
API key's, and replaying its answer would mean storing the secret it shows
(the very thing this database never holds). A retried creation may mint a
second key; it is harmless until someone holds its secret, shows in the list
under the same name and owner, and is revoked in one call. Agent mappings
are unique by what they match, so a retried create answers 409.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from spp_shared.kit.db import UTCDateTime, new_metadata
from spp_shared.kit.mixins import UlidPrimaryKey, Versioned

MIGRATIONS = Path(__file__).parent / "migrations"

# "agent:" + an OIDC subject (255 at most) fits.
ACTOR_LENGTH = 300
TARGET_LENGTH = 500


class Base(DeclarativeBase):
    metadata = new_metadata()


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_created", "created_at", "id"),)

    # The public part of the key (``spp_<id>_...``): found by primary key.
    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    # sha256 of the whole key, hex. The secret itself is never stored.
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    owner: Mapped[str] = mapped_column(String(200), index=True)
    roles: Mapped[list[str]] = mapped_column(JSON)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    network: Mapped[str | None] = mapped_column(String(64), index=True)
    sites: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AgentMapping(UlidPrimaryKey, Versioned, Base):
    __tablename__ = "agent_mappings"
    # Also the index of the sign-in look-up (match = ? AND value = ?).
    __table_args__ = (UniqueConstraint("match", "value"),)

    match: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(254))
    network: Mapped[str | None] = mapped_column(String(64), index=True)
    sites: Mapped[list[str]] = mapped_column(JSON)
    roles: Mapped[list[str]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(ACTOR_LENGTH))


class AuditEvent(UlidPrimaryKey, Base):
    __tablename__ = "audit_events"
    # Newest first, by (at, id): the listing's keyset.
    __table_args__ = (Index("ix_audit_events_at_id", "at", "id"),)

    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(ACTOR_LENGTH), index=True)
    actor_kind: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(TARGET_LENGTH))
    status: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)

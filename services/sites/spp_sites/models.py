"""Tables of the sites service (the registry of networks and sites)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from spp_shared.kit.db import UTCDateTime, new_metadata
from spp_shared.kit.idempotency import idempotency_table
from spp_shared.kit.ingest.jobs import import_tables
from spp_shared.kit.mixins import UlidPrimaryKey, Versioned
from spp_shared.kit.outbox import outbox_table


class Base(DeclarativeBase):
    metadata = new_metadata()


class Network(Versioned, Base):
    __tablename__ = "networks"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    ministry: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32), default="other")
    website: Mapped[str | None] = mapped_column(String(500))
    results_level: Mapped[str] = mapped_column(String(16), default="site")
    # Names under which the programme's exports know this network.
    aliases: Mapped[list[str]] = mapped_column(JSON(none_as_null=True), default=list)
    # The first migration gave these a server default; kept, so the schema
    # is unchanged (every insert sets them).
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now())


class Site(UlidPrimaryKey, Versioned, Base):
    __tablename__ = "sites"
    __table_args__ = (
        UniqueConstraint("network_code", "external_code"),
        Index("ix_sites_geo", "latitude", "longitude"),
    )

    network_code: Mapped[str] = mapped_column(ForeignKey("networks.code"), index=True)
    external_code: Mapped[str] = mapped_column(String(64))
    sp_code: Mapped[str | None] = mapped_column(String(32), unique=True)
    parent_sp_code: Mapped[str | None] = mapped_column(String(32))
    parent_id: Mapped[str | None] = mapped_column(String(26), index=True)
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str | None] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(16), default="site")
    siret: Mapped[str | None] = mapped_column(String(14), index=True)
    address_line: Mapped[str | None] = mapped_column(String(300))
    address_complement: Mapped[str | None] = mapped_column(String(300))
    postcode: Mapped[str | None] = mapped_column(String(5))
    commune_code: Mapped[str | None] = mapped_column(String(5), index=True)
    commune_name: Mapped[str | None] = mapped_column(String(200))
    departement_code: Mapped[str | None] = mapped_column(String(3), index=True)
    region_code: Mapped[str | None] = mapped_column(String(2), index=True)
    country: Mapped[str] = mapped_column(String(100), default="France")
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    website: Mapped[str | None] = mapped_column(String(500))
    appointment_url: Mapped[str | None] = mapped_column(String(500))
    opening_hours: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    accessibility: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    status: Mapped[str] = mapped_column(String(24), default="open", index=True)
    status_since: Mapped[date | None] = mapped_column(Date)
    reopens_on: Mapped[date | None] = mapped_column(Date)
    status_reason: Mapped[str | None] = mapped_column(String(500))
    sp_member_since: Mapped[date | None] = mapped_column(Date)
    # Lower-case, accent-free "name commune" for the text filter.
    search_text: Mapped[str] = mapped_column(Text, default="")
    # Digest of the imported fields: lets a re-import tell "unchanged" cheaply.
    content_hash: Mapped[str | None] = mapped_column(String(32))


idempotency_keys = idempotency_table(Base.metadata)


# Jobs written with the changes that cause them (kit/outbox.py).
outbox_jobs = outbox_table(Base.metadata)

# Imports run by the worker (async=true), and their uploads (kit/ingest/jobs.py).
ingest_imports, ingest_uploads = import_tables(Base.metadata)

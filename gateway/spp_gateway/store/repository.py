"""All SQL of the gateway's store: API keys, agent mappings, audit events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from spp_gateway.models import AgentMapping, ApiKey, AuditEvent, Base
from spp_shared.kit.db import WriteSession
from spp_shared.kit.pagination import keyset_slice

# ``for_update``: writers lock the row they read (PostgreSQL), so a check and
# the write after it are one step for concurrent requests. SQLite needs no
# row lock: a write transaction holds the database's write lock from BEGIN.


async def add(session: WriteSession, row: Base) -> None:
    session.add(row)
    await session.flush()


# --- API keys ---------------------------------------------------------------------


async def get_api_key(
    session: AsyncSession, key_id: str, *, for_update: bool = False
) -> ApiKey | None:
    return await session.get(ApiKey, key_id, with_for_update=for_update or None)


async def list_api_keys(
    session: AsyncSession,
    *,
    owner: str | None,
    network: str | None,
    include_revoked: bool,
    after: tuple[datetime, str] | None,
    limit: int,
) -> Sequence[ApiKey]:
    stmt = keyset_slice(
        select(ApiKey), (ApiKey.created_at, ApiKey.id), after, limit, descending=True
    )
    if owner is not None:
        stmt = stmt.where(ApiKey.owner == owner)
    if network is not None:
        stmt = stmt.where(ApiKey.network == network)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return (await session.scalars(stmt)).all()


async def touch_api_key(
    session: WriteSession, key_id: str, at: datetime, *, older_than: datetime
) -> None:
    """Set last_used_at unless a write since ``older_than`` already did.

    The condition makes the resolution hold across gateway processes, not
    only within one: of many processes seeing the key, one writes.
    """
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < older_than),
        )
        .values(last_used_at=at)
    )


# --- agent mappings -----------------------------------------------------------------


async def get_mapping(
    session: AsyncSession, mapping_id: str, *, for_update: bool = False
) -> AgentMapping | None:
    return await session.get(AgentMapping, mapping_id, with_for_update=for_update or None)


async def get_mapping_by(session: AsyncSession, match: str, value: str) -> AgentMapping | None:
    stmt = select(AgentMapping).where(AgentMapping.match == match, AgentMapping.value == value)
    return await session.scalar(stmt)


async def find_mappings(
    session: AsyncSession, candidates: Sequence[tuple[str, str]]
) -> Sequence[AgentMapping]:
    """Every mapping matching one of the ``(match, value)`` pairs: one query
    for a sign-in, whatever the number of claims it carries."""
    if not candidates:
        return []
    conds = [and_(AgentMapping.match == m, AgentMapping.value == v) for m, v in candidates]
    return (await session.scalars(select(AgentMapping).where(or_(*conds)))).all()


async def list_mappings(
    session: AsyncSession,
    *,
    match: str | None,
    network: str | None,
    after: str | None,
    limit: int,
) -> Sequence[AgentMapping]:
    stmt = keyset_slice(select(AgentMapping), (AgentMapping.id,), after, limit)
    if match is not None:
        stmt = stmt.where(AgentMapping.match == match)
    if network is not None:
        stmt = stmt.where(AgentMapping.network == network)
    return (await session.scalars(stmt)).all()


async def delete_mapping(session: WriteSession, mapping_id: str) -> None:
    await session.execute(delete(AgentMapping).where(AgentMapping.id == mapping_id))


# --- audit events ---------------------------------------------------------------------


async def list_events(
    session: AsyncSession,
    *,
    actor: str | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> Sequence[AuditEvent]:
    stmt = keyset_slice(
        select(AuditEvent), (AuditEvent.at, AuditEvent.id), after, limit, descending=True
    )
    if actor is not None:
        stmt = stmt.where(AuditEvent.actor == actor)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.at < until)
    return (await session.scalars(stmt)).all()

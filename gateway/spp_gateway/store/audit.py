"""The audit log: who changed what through the gateway, and when.

Privileged changes (API keys, role mappings) are recorded by their use case
in the transaction that makes them, so a change is never without its event
nor an event without its change. Proxied writes are recorded by
:func:`record_request` after the upstream answered, in a short transaction
of their own that can fail without failing the request.

Details never hold a secret, a digest of one, or citizens' data: callers
pass only what the event needs, and :func:`scrub` drops what slips through
anyway (fields named like credentials or e-mail addresses, API keys inside
strings).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from spp_gateway.models import ACTOR_LENGTH, TARGET_LENGTH, AuditEvent
from spp_gateway.store import repository as repo
from spp_shared.contracts.access import AuditEventOut
from spp_shared.kit.db import Database, WriteSession
from spp_shared.kit.identity import Principal
from spp_shared.kit.ids import new_ulid
from spp_shared.kit.pagination import BY_TIME_AND_ID, Page

log = structlog.get_logger("spp.gateway.audit")

# Substrings of detail names that are never recorded, whatever the caller.
_FORBIDDEN_NAMES = ("secret", "hash", "password", "token", "authorization", "cookie", "email")
# An API key anywhere in a string keeps only its public prefix.
_KEY_IN_TEXT = re.compile(r"(spp_[a-z2-7]{12})_[A-Za-z0-9_-]{43}")
_EMAIL_IN_TEXT = re.compile(r"[^\s@\"'<>]+@[^\s@\"'<>]+\.[A-Za-z]{2,}")
_MAX_DEPTH = 4
# PostgreSQL refuses NUL in text: an actor or a path holding one would make
# the event's insert fail, and the event be dropped (an unaudited request).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable(text: str) -> str:
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def scrub(value: Any, depth: int = 0) -> Any:
    """``value`` without credentials or e-mail addresses (see the module's docstring)."""
    if isinstance(value, str):
        return _printable(_EMAIL_IN_TEXT.sub("[e-mail]", _KEY_IN_TEXT.sub(r"\1_[redacted]", value)))
    if depth >= _MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {
            _printable(str(k)): scrub(v, depth + 1)
            for k, v in value.items()
            if not any(bad in str(k).lower() for bad in _FORBIDDEN_NAMES)
        }
    if isinstance(value, list | tuple):
        return [scrub(v, depth + 1) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def event_out(row: AuditEvent) -> AuditEventOut:
    return AuditEventOut.model_validate(row, from_attributes=True)


def _event(
    *,
    actor: Principal,
    action: str,
    target: str | None,
    status: int,
    request_id: str | None,
    details: dict[str, Any] | None,
) -> AuditEvent:
    return AuditEvent(
        id=new_ulid(),
        at=datetime.now(UTC),
        actor=_printable(actor.subject)[:ACTOR_LENGTH],
        actor_kind=actor.kind.value,
        action=action,
        target=scrub(target)[:TARGET_LENGTH] if target is not None else None,
        status=status,
        request_id=_printable(request_id)[:128] if request_id else None,
        details=scrub(details or {}),
    )


async def record(
    session: WriteSession,
    *,
    actor: Principal,
    action: str,
    target: str | None,
    status: int,
    request_id: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add one event to the caller's transaction (committed with the change)."""
    await repo.add(
        session,
        _event(
            actor=actor,
            action=action,
            target=target,
            status=status,
            request_id=request_id,
            details=details,
        ),
    )


async def record_request(
    db: Database,
    *,
    actor: Principal,
    method: str,
    path: str,
    status: int,
    request_id: str | None,
    details: dict[str, Any] | None = None,
) -> bool:
    """Record a proxied write (action ``request``) in its own transaction.

    Never raises (but for cancellation): the upstream already answered, and
    losing one event is better than turning a done write into an error. A
    failure is logged as a warning and the event dropped; returns whether it
    was recorded. The target is the path without its query string, which may
    carry what the log must not keep.
    """
    event = _event(
        actor=actor,
        action="request",
        target=path.partition("?")[0],
        status=status,
        request_id=request_id,
        details={"method": method, **(details or {})},
    )
    try:
        async with db.sessionmaker() as session, session.begin():
            await repo.add(session, event)
    except Exception as exc:
        log.warning(
            "audit_event_dropped",
            action="request",
            method=method,
            status=status,
            request_id=request_id,
            error_type=type(exc).__name__,
        )
        return False
    return True


async def list_events(
    session: AsyncSession,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[AuditEventOut]:
    """Events newest first (``since`` included, ``until`` excluded)."""

    async def read(after: tuple[datetime, str] | None, n: int) -> Sequence[AuditEvent]:
        return await repo.list_events(
            session, actor=actor, action=action, since=since, until=until, after=after, limit=n
        )

    return await BY_TIME_AND_ID.page(
        Page[AuditEventOut],
        cursor=cursor,
        limit=limit,
        read=read,
        out=event_out,
        key=lambda r: (r.at, r.id),
    )

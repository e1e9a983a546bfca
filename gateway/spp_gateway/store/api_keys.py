"""API keys: authentication on the hot path, and their administration.

:meth:`ApiKeyStore.authenticate` runs on every request that presents a key.
The row it needs is cached by key id for ``cache_seconds`` (bounded), and
everything that decides is checked on every call, cached or not: the digest
of the presented key (a wrong secret for a cached id still fails), the
revocation and the expiry. The cache only bounds how late a change made by
ANOTHER process is seen here; the process that revokes or rotates forgets
the key once its transaction commits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from spp_gateway.models import ApiKey
from spp_gateway.store import audit
from spp_gateway.store import repository as repo
from spp_gateway.store.cache import MISSING, TTLCache
from spp_gateway.store.errors import (
    ApiKeyNotFound,
    ApiKeyRevoked,
    GrantBeyondCaller,
    InvalidGrant,
    StoreUnavailable,
)
from spp_gateway.store.grants import FieldIssue, escalation_issues, grant_issues, outlives_caller
from spp_gateway.store.keys import (
    hash_key,
    is_key_id,
    key_matches,
    key_prefix,
    new_key,
    new_key_id,
    parse_key,
)
from spp_shared.contracts.access import (
    API_KEY_ROLES,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
)
from spp_shared.contracts.permissions import Role
from spp_shared.kit.db import Database, WriteSession
from spp_shared.kit.identity import Principal, PrincipalKind
from spp_shared.kit.pagination import BY_TIME_AND_ID, Page

log = structlog.get_logger("spp.gateway.api_keys")

DEFAULT_CACHE_ENTRIES = 10_000
_ROLE_VALUES = frozenset(r.value for r in Role)


def now() -> datetime:
    return datetime.now(UTC)


def known_roles(values: Sequence[str]) -> list[Role]:
    """Stored roles still known to this version (a removed one grants nothing)."""
    return [Role(v) for v in values if v in _ROLE_VALUES]


def key_out(row: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.id,
        prefix=key_prefix(row.id),
        name=row.name,
        owner=row.owner,
        roles=known_roles(row.roles),
        scopes=list(row.scopes),
        network=row.network,
        sites=list(row.sites),
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        rotated_at=row.rotated_at,
    )


def principal_of(row: ApiKey) -> Principal:
    return Principal(
        subject=f"api_key:{row.id}",
        kind=PrincipalKind.api_key,
        roles=known_roles(row.roles),
        scopes=list(row.scopes),
        network=row.network,
        sites=list(row.sites),
        expires_at=row.expires_at,
    )


@dataclass(frozen=True, slots=True)
class _Credential:
    """What authentication needs of a row (never the secret: only its digest)."""

    secret_hash: str
    principal: Principal
    expires_at: datetime | None
    revoked: bool


def after_commit(session: WriteSession, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's transaction commits.

    Forgetting a cached credential before the commit is not enough: a look-up
    in between would read the row as it still is, and cache that for the
    whole TTL.
    """

    def listener(_session: Any) -> None:
        callback()

    event.listen(session.sync_session, "after_commit", listener, once=True)


class ApiKeyStore:
    """One per gateway process, shared by every request."""

    def __init__(
        self,
        db: Database,
        *,
        cache_seconds: float,
        last_used_resolution: float,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._cache: TTLCache[str, _Credential] = TTLCache(
            ttl=cache_seconds, max_entries=cache_entries, clock=clock
        )
        # Ids no key has, apart: anyone can present as many of those as they
        # like, and in the same cache they would push the real keys out (each
        # real key's next request a database read again).
        self._unknown: TTLCache[str, bool] = TTLCache(
            ttl=cache_seconds, max_entries=cache_entries, clock=clock
        )
        # Keys whose last use was written less than a resolution ago (here).
        self._touched: TTLCache[str, bool] = TTLCache(
            ttl=last_used_resolution, max_entries=cache_entries, clock=clock
        )
        self._resolution = timedelta(seconds=last_used_resolution)
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: dict[str, asyncio.Task[_Credential | None]] = {}
        # Bumped by forget(): a look-up that started before does not cache
        # what it read, which may predate the change.
        self._generation = 0

    # --- the hot path -----------------------------------------------------------

    async def authenticate(self, presented: str) -> Principal | None:
        """The key's principal, or None (not a key, unknown, wrong secret,
        revoked or expired). Raises :class:`StoreUnavailable` when the database
        cannot be read. The principal returned is shared: copy before changing."""
        parsed = parse_key(presented)
        if parsed is None:
            return None
        key_id, whole = parsed
        credential = await self._credential(key_id)
        if credential is None or not key_matches(credential.secret_hash, whole):
            return None
        moment = now()
        if credential.revoked or (
            credential.expires_at is not None and credential.expires_at <= moment
        ):
            return None
        self._touch(key_id, moment)
        return credential.principal

    async def _credential(self, key_id: str) -> _Credential | None:
        cached = self._cache.get(key_id)
        if cached is not MISSING:
            return cached
        if self._unknown.get(key_id) is not MISSING:
            return None
        # One read per key at a time: when an entry expires under load, the
        # fifty requests that notice wait for one query instead of sending fifty.
        pending = self._pending.get(key_id)
        if pending is not None:
            return await asyncio.shield(pending)
        task = asyncio.get_running_loop().create_task(self._read_credential(key_id))
        self._pending[key_id] = task

        def done(_: asyncio.Task[_Credential | None]) -> None:
            # forget() may have replaced this read by a newer one: keep that.
            if self._pending.get(key_id) is task:
                del self._pending[key_id]

        task.add_done_callback(done)
        return await asyncio.shield(task)

    async def _read_credential(self, key_id: str) -> _Credential | None:
        generation = self._generation
        try:
            async with self._db.read_sessionmaker() as session:
                row = await repo.get_api_key(session, key_id)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreUnavailable("the API key database cannot be read") from exc
        credential = (
            _Credential(
                secret_hash=row.secret_hash,
                principal=principal_of(row),
                expires_at=row.expires_at,
                revoked=row.revoked_at is not None,
            )
            if row is not None
            else None
        )
        if generation == self._generation:
            if credential is None:
                self._unknown.put(key_id, True)
            else:
                self._cache.put(key_id, credential)
        return credential

    def _touch(self, key_id: str, moment: datetime) -> None:
        """Record the use in the background, at most once per resolution."""
        if self._touched.get(key_id) is not MISSING:
            return
        self._touched.put(key_id, True)
        task = asyncio.get_running_loop().create_task(self._write_last_used(key_id, moment))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_last_used(self, key_id: str, moment: datetime) -> None:
        try:
            async with self._db.sessionmaker() as session, session.begin():
                await repo.touch_api_key(
                    session, key_id, moment, older_than=moment - self._resolution
                )
        except Exception as exc:
            # Bookkeeping only: the request it describes was served.
            log.warning("api_key_last_used_not_recorded", key_id=key_id, error=type(exc).__name__)

    def forget(self, key_id: str) -> None:
        """Drop ``key_id`` from the cache: the next request reads the database.

        A read still in flight is dropped too: it may have read the row before
        the change, and a request arriving now must not wait for it and be
        answered with what it read (a revoked key let in after the revocation
        was answered).
        """
        self._generation += 1
        self._cache.pop(key_id)
        self._unknown.pop(key_id)
        self._pending.pop(key_id, None)

    async def close(self) -> None:
        """Wait for the last-used writes still running (call before disposing the db)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    @property
    def cached(self) -> int:
        """Entries in the cache (for tests and metrics)."""
        return len(self._cache)

    # --- administration (use cases; the caller's session commits) ----------------------

    def _forget_on_commit(self, session: WriteSession, key_id: str) -> None:
        self.forget(key_id)
        after_commit(session, lambda: self.forget(key_id))

    async def create_key(
        self,
        session: WriteSession,
        actor: Principal,
        data: ApiKeyCreate,
        *,
        request_id: str | None = None,
    ) -> ApiKeyCreated:
        """A new key; the answer is the only place its secret ever appears."""
        stamp = now()
        issues = grant_issues(
            roles=data.roles,
            network=data.network,
            sites=data.sites,
            scopes=data.scopes,
            allowed_roles=API_KEY_ROLES,
            expires_at=data.expires_at,
            now=stamp,
        )
        if issues:
            raise InvalidGrant.of(issues)
        beyond = escalation_issues(
            actor, roles=data.roles, network=data.network, sites=data.sites, scopes=data.scopes
        ) + outlives_caller(actor, data.expires_at)
        if beyond:
            raise GrantBeyondCaller.of(beyond, what="create this key")
        key_id = new_key_id()
        secret = new_key(key_id)
        row = ApiKey(
            id=key_id,
            secret_hash=hash_key(secret),
            name=data.name,
            owner=data.owner,
            roles=[r.value for r in data.roles],
            scopes=[s.value for s in data.scopes],
            network=data.network,
            sites=list(data.sites),
            created_at=stamp,
            created_by=actor.subject,
            expires_at=data.expires_at,
        )
        await repo.add(session, row)
        await audit.record(
            session,
            actor=actor,
            action="api_key.created",
            target=key_id,
            status=201,
            request_id=request_id,
            details={
                "name": data.name,
                "owner": data.owner,
                "roles": row.roles,
                "scopes": row.scopes,
                "network": data.network,
                "sites": row.sites,
                "expires_at": data.expires_at.isoformat() if data.expires_at else None,
            },
        )
        return ApiKeyCreated(**key_out(row).model_dump(), secret=secret)

    async def list_keys(
        self,
        session: AsyncSession,
        actor: Principal,
        *,
        owner: str | None = None,
        network: str | None = None,
        include_revoked: bool = False,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[ApiKeyOut]:
        """Keys newest first, only those no wider than ``actor`` (see
        :func:`beyond_caller`); revoked ones only when asked.

        Whether a key is wider is decided in Python, from the permission
        matrix (``keep``): keys are few (hundreds), and an unscoped
        administrator's first batch always fills the page.
        """

        async def read(after: tuple[datetime, str] | None, n: int) -> Sequence[ApiKey]:
            return await repo.list_api_keys(
                session,
                owner=owner,
                network=network,
                include_revoked=include_revoked,
                after=after,
                limit=n,
            )

        return await BY_TIME_AND_ID.page(
            Page[ApiKeyOut],
            cursor=cursor,
            limit=limit,
            read=read,
            out=key_out,
            key=lambda r: (r.created_at, r.id),
            keep=lambda r: not beyond_caller(actor, r),
        )

    async def get_key(self, session: AsyncSession, actor: Principal, key_id: str) -> ApiKeyOut:
        row = await _get(session, key_id)
        _ensure_within(actor, row, what="read this key")
        return key_out(row)

    async def rotate_key(
        self,
        session: WriteSession,
        actor: Principal,
        key_id: str,
        *,
        request_id: str | None = None,
    ) -> ApiKeyCreated:
        """A new secret for the same key (id, grants and history kept); the old
        secret stops working when this commits, in every process within the
        cache time and in this one at once."""
        row = await _get(session, key_id, for_update=True)
        if row.revoked_at is not None:
            raise ApiKeyRevoked(f"The API key '{key_id}' is revoked; create a new one.")
        # The answer hands the caller a working secret of this key: as much
        # as creating it would.
        _ensure_within(actor, row, what="rotate this key", lasting=True)
        secret = new_key(key_id)
        row.secret_hash = hash_key(secret)
        row.rotated_at = now()
        await session.flush()
        await audit.record(
            session,
            actor=actor,
            action="api_key.rotated",
            target=key_id,
            status=200,
            request_id=request_id,
            details={"name": row.name, "owner": row.owner},
        )
        self._forget_on_commit(session, key_id)
        return ApiKeyCreated(**key_out(row).model_dump(), secret=secret)

    async def revoke_key(
        self,
        session: WriteSession,
        actor: Principal,
        key_id: str,
        *,
        request_id: str | None = None,
    ) -> ApiKeyOut:
        """Revoke ``key_id`` for good (the row stays, for the audit trail).

        Idempotent: revoking a revoked key answers it as it is, and records
        nothing (nothing changed).
        """
        row = await _get(session, key_id, for_update=True)
        # Taking a wider key away from its holder is acting on it: a key
        # narrowed to managing keys must not cut off the administrators.
        _ensure_within(actor, row, what="revoke this key")
        if row.revoked_at is None:
            row.revoked_at = now()
            await session.flush()
            await audit.record(
                session,
                actor=actor,
                action="api_key.revoked",
                target=key_id,
                status=200,
                request_id=request_id,
                details={"name": row.name, "owner": row.owner},
            )
        self._forget_on_commit(session, key_id)
        return key_out(row)


def beyond_caller(actor: Principal, row: ApiKey) -> list[FieldIssue]:
    """What key ``row`` allows that ``actor`` may not (empty: it is no wider).

    The rule that refuses minting a wider key (:func:`escalation_issues`)
    applies to every act on an existing one: a caller reads, lists, rotates
    and revokes only keys no wider than its own credential.
    """
    return escalation_issues(
        actor,
        roles=known_roles(row.roles),
        network=row.network,
        sites=row.sites,
        scopes=row.scopes,
    )


def _ensure_within(actor: Principal, row: ApiKey, *, what: str, lasting: bool = False) -> None:
    """``lasting``: the act hands out a working secret (rotation), so the key
    must not outlive ``actor`` either (:func:`outlives_caller`)."""
    beyond = beyond_caller(actor, row)
    if lasting:
        beyond += outlives_caller(actor, row.expires_at)
    if beyond:
        raise GrantBeyondCaller.of(beyond, what=what, location="path")


async def _get(session: AsyncSession, key_id: str, *, for_update: bool = False) -> ApiKey:
    if not is_key_id(key_id):
        # Never echoed, never queried: it may be a whole key pasted by mistake
        # (a credential in the answer), or hold what PostgreSQL refuses (NUL).
        hint = (
            "name a key by its id (the 12 characters after 'spp_'), never by the key itself"
            if parse_key(key_id) is not None
            else "an id is 12 characters, a-z and 2-7"
        )
        raise ApiKeyNotFound(f"No API key has the id you sent ({hint}).")
    row = await repo.get_api_key(session, key_id, for_update=for_update)
    if row is None:
        raise ApiKeyNotFound(f"No API key has the id '{key_id}'.")
    return row

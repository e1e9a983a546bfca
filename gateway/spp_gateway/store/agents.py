"""Agents' role mappings: what an agent signed in through OIDC may do.

An identity provider says who the agent is (subject, e-mail address,
organisation's SIRET); a mapping says what that grants on the platform
(roles, network, sites). Several mappings can match one agent; the most
specific wins, in this order:

1. ``subject``: one account at the provider;
2. ``email``: one person's address;
3. ``siret``: one establishment (a Caf, a France services site...);
4. ``email_domain``: a whole organisation, sometimes several networks
   (``interieur.gouv.fr``), hence last.

So an administrator can grant a domain ``agent`` and still give one person
of it ``network_manager`` with a mapping on their address. An agent no
mapping matches is signed in and granted nothing beyond the public.

Granting roles is a privileged action: each change is an audit event, and
the cache is forgotten once it commits (other processes within the cache
time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from spp_gateway.models import AgentMapping
from spp_gateway.store import audit
from spp_gateway.store import repository as repo
from spp_gateway.store.api_keys import DEFAULT_CACHE_ENTRIES, after_commit, known_roles
from spp_gateway.store.cache import MISSING, TTLCache
from spp_gateway.store.errors import (
    AgentMappingNotFound,
    DuplicateAgentMapping,
    GrantBeyondCaller,
    InvalidGrant,
    StoreUnavailable,
)
from spp_gateway.store.grants import FieldIssue, escalation_issues, grant_issues, outlives_caller
from spp_shared.contracts.access import (
    AGENT_ROLES,
    AgentMappingCreate,
    AgentMappingOut,
    AgentMappingPatch,
    MatchKind,
    normalize_match_value,
)
from spp_shared.contracts.permissions import Role
from spp_shared.kit.db import Database, WriteSession
from spp_shared.kit.etags import check_if_match, make_etag
from spp_shared.kit.identity import Principal, PrincipalKind
from spp_shared.kit.ids import is_ulid, new_ulid
from spp_shared.kit.pagination import BY_ID, Page

PRECEDENCE: tuple[MatchKind, ...] = ("subject", "email", "siret", "email_domain")


def now() -> datetime:
    return datetime.now(UTC)


def mapping_out(row: AgentMapping) -> AgentMappingOut:
    return AgentMappingOut(
        id=row.id,
        match=row.match,  # only MatchKind values are stored; pydantic checks it
        value=row.value,
        network=row.network,
        sites=list(row.sites),
        roles=known_roles(row.roles),
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        version=row.version,
    )


def mapping_etag(mapping: AgentMapping | AgentMappingOut) -> str:
    return make_etag(mapping.id, mapping.version)


def candidates(
    *, subject: str, email: str | None, email_domain: str | None, siret: str | None
) -> list[tuple[str, str]]:
    """The ``(match, value)`` pairs an identity can be mapped by, most specific
    first, in the canonical form mappings are stored in. A claim that is not
    well formed matches nothing (it cannot equal a stored, valid value)."""
    if email and not email_domain:
        email_domain = email.rpartition("@")[2]
    found: list[tuple[str, str]] = []
    claims: dict[MatchKind, str | None] = {
        "subject": subject,
        "email": email,
        "siret": siret,
        "email_domain": email_domain,
    }
    for match in PRECEDENCE:
        value = claims[match]
        if not value:
            continue
        try:
            found.append((match, normalize_match_value(match, value)))
        except ValueError:
            continue
    return found


def _details(row: AgentMapping) -> dict[str, Any]:
    # An agent's address is personal data: the event keeps its domain only
    # (the mapping's id, the target, leads to the rest while it exists).
    who: dict[str, Any] = (
        {"value_domain": row.value.rpartition("@")[2]}
        if row.match == "email"
        else {"value": row.value}
    )
    return {
        "match": row.match,
        **who,
        "roles": list(row.roles),
        "network": row.network,
        "sites": list(row.sites),
    }


class AgentDirectory:
    """Resolves signed-in agents to principals; one per gateway process."""

    def __init__(
        self,
        db: Database,
        *,
        cache_seconds: float,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._cache: TTLCache[tuple[tuple[str, str], ...], Principal] = TTLCache(
            ttl=cache_seconds, max_entries=cache_entries, clock=clock
        )
        self._generation = 0
        self._pending: dict[tuple[tuple[str, str], ...], asyncio.Task[Principal]] = {}

    async def principal_for(
        self,
        *,
        subject: str,
        email: str | None,
        email_domain: str | None,
        siret: str | None,
        uid: str | None,
    ) -> Principal:
        """The agent's principal: the first mapping matching, in :data:`PRECEDENCE`.

        ``uid`` (the provider's own user id) is accepted, not matched: the
        subject already names the account, and the match kinds stay the four
        an administrator can know. Raises :class:`StoreUnavailable` when the
        database cannot be read.
        """
        del uid
        pairs = tuple(
            candidates(subject=subject, email=email, email_domain=email_domain, siret=siret)
        )
        cached = self._cache.get(pairs)
        if cached is not MISSING:
            return cached
        # One read per agent at a time (see ApiKeyStore._credential).
        pending = self._pending.get(pairs)
        if pending is None:
            task = asyncio.get_running_loop().create_task(self._resolve(subject, pairs))
            self._pending[pairs] = pending = task

            def done(_: asyncio.Task[Principal]) -> None:
                # forget_all() may have replaced this read by a newer one: keep that.
                if self._pending.get(pairs) is task:
                    del self._pending[pairs]

            task.add_done_callback(done)
        return await asyncio.shield(pending)

    async def _resolve(self, subject: str, pairs: tuple[tuple[str, str], ...]) -> Principal:
        generation = self._generation
        try:
            async with self._db.read_sessionmaker() as session:
                rows = await repo.find_mappings(session, pairs)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreUnavailable("the agent mapping database cannot be read") from exc
        by_pair = {(r.match, r.value): r for r in rows}
        chosen = next((by_pair[p] for p in pairs if p in by_pair), None)
        principal = Principal(
            subject=f"agent:{subject}",
            kind=PrincipalKind.agent,
            roles=known_roles(chosen.roles) if chosen is not None else [],
            network=chosen.network if chosen is not None else None,
            sites=list(chosen.sites) if chosen is not None else [],
        )
        if generation == self._generation:
            self._cache.put(pairs, principal)
        return principal

    def forget_all(self) -> None:
        """Drop every cached agent: any mapping change may affect any of them.

        Reads in flight are dropped too: they may predate the change, and a
        sign-in arriving now must read the mappings as they are.
        """
        self._generation += 1
        self._cache.clear()
        self._pending.clear()

    @property
    def cached(self) -> int:
        return len(self._cache)

    def _forget_on_commit(self, session: WriteSession) -> None:
        self.forget_all()
        after_commit(session, self.forget_all)

    # --- administration (use cases; the caller's session commits) ----------------------

    async def create_mapping(
        self,
        session: WriteSession,
        actor: Principal,
        data: AgentMappingCreate,
        *,
        request_id: str | None = None,
    ) -> AgentMappingOut:
        _check(data.roles, data.network, data.sites)
        _ensure_within(actor, data.roles, data.network, data.sites, what="grant these roles")
        existing = await repo.get_mapping_by(session, data.match, data.value)
        if existing is not None:
            raise _duplicate(data.match, existing.id)
        stamp = now()
        row = AgentMapping(
            id=new_ulid(),
            match=data.match,
            value=data.value,
            network=data.network,
            sites=list(data.sites),
            roles=[r.value for r in data.roles],
            created_at=stamp,
            created_by=actor.subject,
            updated_at=stamp,
            version=1,
        )
        try:
            await repo.add(session, row)
        except IntegrityError as exc:  # a concurrent create won the race
            raise _duplicate(data.match, None) from exc
        await audit.record(
            session,
            actor=actor,
            action="agent_mapping.created",
            target=row.id,
            status=201,
            request_id=request_id,
            details=_details(row),
        )
        self._forget_on_commit(session)
        return mapping_out(row)

    async def list_mappings(
        self,
        session: AsyncSession,
        actor: Principal,
        *,
        match: MatchKind | None = None,
        network: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[AgentMappingOut]:
        """Mappings oldest first (ids sort by creation), only those no wider
        than ``actor`` (batches read until the page is full, as for keys)."""

        async def read(after: str | None, n: int) -> Sequence[AgentMapping]:
            return await repo.list_mappings(
                session, match=match, network=network, after=after, limit=n
            )

        return await BY_ID.page(
            Page[AgentMappingOut],
            cursor=cursor,
            limit=limit,
            read=read,
            out=mapping_out,
            key=lambda r: r.id,
            keep=lambda r: not _beyond(actor, r),
        )

    async def get_mapping(
        self, session: AsyncSession, actor: Principal, mapping_id: str
    ) -> AgentMappingOut:
        row = await _get(session, mapping_id)
        _ensure_row_within(actor, row, what="read this mapping")
        return mapping_out(row)

    async def patch_mapping(
        self,
        session: WriteSession,
        actor: Principal,
        mapping_id: str,
        patch: AgentMappingPatch,
        if_match: str | None,
        *,
        request_id: str | None = None,
    ) -> AgentMappingOut:
        """Change roles, network or sites; ``If-Match`` required (lost updates
        of grants are silent privilege changes)."""
        row = await _get(session, mapping_id, for_update=True)
        # Changing a wider mapping, even narrowing it, takes from its agents
        # what the caller could not have granted.
        _ensure_row_within(actor, row, what="change this mapping")
        check_if_match(if_match, mapping_etag(row))
        changes = patch.model_dump(mode="json", exclude_unset=True)
        roles = [Role(r) for r in changes.get("roles", row.roles)]
        network: str | None = changes.get("network", row.network)
        sites: list[str] = changes.get("sites", row.sites)
        _check(roles, network, sites)
        _ensure_within(actor, roles, network, sites, what="grant these roles")
        before = _details(row)
        row.roles = [r.value for r in roles]
        row.network = network
        row.sites = list(sites)
        after = _details(row)
        if after != before:
            row.changed()
            await session.flush()
            changed = {k: after[k] for k in after if after[k] != before.get(k)}
            await audit.record(
                session,
                actor=actor,
                action="agent_mapping.updated",
                target=row.id,
                status=200,
                request_id=request_id,
                details={"match": row.match, "changes": changed},
            )
            self._forget_on_commit(session)
        return mapping_out(row)

    async def delete_mapping(
        self,
        session: WriteSession,
        actor: Principal,
        mapping_id: str,
        if_match: str | None = None,
        *,
        request_id: str | None = None,
    ) -> None:
        """Remove a mapping (``If-Match`` optional): its agents lose what it granted."""
        row = await _get(session, mapping_id, for_update=True)
        _ensure_row_within(actor, row, what="delete this mapping")
        check_if_match(if_match, mapping_etag(row), required=False)
        details = _details(row)
        await repo.delete_mapping(session, row.id)
        await audit.record(
            session,
            actor=actor,
            action="agent_mapping.deleted",
            target=mapping_id,
            status=204,
            request_id=request_id,
            details=details,
        )
        self._forget_on_commit(session)


def _check(roles: list[Role], network: str | None, sites: list[str]) -> None:
    issues = grant_issues(roles=roles, network=network, sites=sites, allowed_roles=AGENT_ROLES)
    if issues:
        raise InvalidGrant.of(issues)


def _duplicate(match: str, existing_id: str | None) -> DuplicateAgentMapping:
    return DuplicateAgentMapping(
        f"A mapping already matches this {match}; change it instead.", existing_id=existing_id
    )


def _ensure_within(
    actor: Principal, roles: list[Role], network: str | None, sites: list[str], *, what: str
) -> None:
    # A mapping never expires: a caller whose credential does may not grant one.
    beyond = escalation_issues(actor, roles=roles, network=network, sites=sites) + outlives_caller(
        actor, None
    )
    if beyond:
        raise GrantBeyondCaller.of(beyond, what=what)


def _beyond(actor: Principal, row: AgentMapping) -> list[FieldIssue]:
    """What mapping ``row`` grants that ``actor`` may not (empty: no wider)."""
    return escalation_issues(
        actor, roles=known_roles(row.roles), network=row.network, sites=row.sites
    )


def _ensure_row_within(actor: Principal, row: AgentMapping, *, what: str) -> None:
    """A caller acts only on mappings no wider than itself (as for API keys)."""
    beyond = _beyond(actor, row)
    if beyond:
        raise GrantBeyondCaller.of(beyond, what=what, location="path")


async def _get(session: AsyncSession, mapping_id: str, *, for_update: bool = False) -> AgentMapping:
    if not is_ulid(mapping_id):
        # Not queried nor echoed: it may hold what PostgreSQL refuses (NUL).
        raise AgentMappingNotFound("No agent mapping has the id you sent.")
    row = await repo.get_mapping(session, mapping_id, for_update=for_update)
    if row is None:
        raise AgentMappingNotFound(f"No agent mapping has the id '{mapping_id}'.")
    return row

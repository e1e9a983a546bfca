"""``Idempotency-Key`` on creating POSTs, with Stripe's semantics.

The first response to a (caller, key) is stored and replayed to retries; the
same key with a different request is refused (422); keys live at least 24 h.
The key is claimed in the request's own transaction, so the claim and the
work commit or roll back together: a request that failed leaves no key
behind and can simply be retried. Only authenticated callers get replays:
anonymous callers share one identity, and replaying one person's answer to
another would leak it.

A creating POST takes :data:`IdempotencyDep` after its authorization, and
answers through it; a retry is answered before the route runs::

    async def create_thing(data: ThingCreate, session: SessionDep, idem: IdempotencyDep):
        thing = await service.create_thing(session, data)
        return await idem.respond(201, thing_out(thing), {"Location": ...})

The service declares the table in its metadata (``idempotency_table``) and
creates it in a migration.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import (
    JSON,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from spp_shared.kit.db import Database, SessionDep, UTCDateTime, WriteSession
from spp_shared.kit.errors import BadRequest, Conflict, EarlyResponse, ValidationProblem
from spp_shared.kit.identity import Principal, PrincipalDep
from spp_shared.kit.retention import delete_in_batches

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255
# Response headers worth replaying; the rest are per-response.
KEPT_HEADERS = ("location", "etag", "content-type")


PRINCIPAL_WIDTH = 200


def idempotency_table(metadata: MetaData) -> Table:
    """The table each service that accepts keys declares in its own metadata."""
    return Table(
        "idempotency_keys",
        metadata,
        Column("principal", String(PRINCIPAL_WIDTH), primary_key=True),
        Column("key", String(MAX_KEY_LENGTH), primary_key=True),
        Column("request_hash", String(64), nullable=False),
        Column("status_code", Integer, nullable=True),
        Column("response_body", LargeBinary, nullable=True),
        Column("response_headers", JSON, nullable=True),
        Column("created_at", UTCDateTime(), nullable=False, index=True),
    )


# The statements name the table, not its metadata: this one serves every
# service, whose own metadata declares the same table for its migrations.
IDEMPOTENCY_KEYS = idempotency_table(MetaData())


class InvalidIdempotencyKey(BadRequest):
    type_ = "invalid-idempotency-key"
    title = "Invalid Idempotency-Key"


class IdempotencyKeyReused(ValidationProblem):
    type_ = "idempotency-key-reused"
    title = "Idempotency-Key reused with a different request"


class IdempotencyKeyInFlight(Conflict):
    type_ = "idempotency-key-in-flight"
    title = "A request with this Idempotency-Key is still being processed"


def principal_column(subject: str) -> str:
    """The subject as stored: agents' subjects may be longer than the column
    (an OIDC ``sub`` takes 255 characters), so a long one is stored as its digest."""
    if len(subject) <= PRINCIPAL_WIDTH:
        return subject
    return "sha256:" + hashlib.sha256(subject.encode()).hexdigest()


class Idempotency:
    """Per request: ``replay()`` first, then ``respond()`` with the result."""

    def __init__(
        self,
        session: WriteSession,
        table: Table,
        principal: Principal,
        key: str | None,
        request_hash: str,
    ) -> None:
        self.session = session
        self.table = table
        self.principal = principal_column(principal.subject)
        self.key = key if key is not None and not principal.is_anonymous else None
        self.request_hash = request_hash

    def _where(self) -> Any:
        t = self.table
        return (t.c.principal == self.principal) & (t.c.key == self.key)

    async def _existing(self) -> Any:
        return (await self.session.execute(select(self.table).where(self._where()))).first()

    def _replay(self, row: Any) -> Response:
        if row.request_hash != self.request_hash:
            raise IdempotencyKeyReused(
                f"The {HEADER} '{self.key}' was used with a different request; "
                "use a new key for a new request."
            )
        if row.status_code is None:
            raise IdempotencyKeyInFlight(f"Retry the request with {HEADER} '{self.key}' later.")
        headers = dict(row.response_headers or {}) | {REPLAYED_HEADER: "true"}
        return Response(row.response_body, status_code=row.status_code, headers=headers)

    async def replay(self) -> Response | None:
        """The stored response for this key, or None after claiming the key
        (:data:`IdempotencyDep` calls it before the route runs)."""
        if self.key is None:
            return None
        row = await self._existing()
        now = datetime.now(UTC)
        if row is not None and row.created_at < now - TTL:
            await self.session.execute(delete(self.table).where(self._where()))
            row = None
        if row is not None:
            return self._replay(row)
        try:
            async with self.session.begin_nested():
                await self.session.execute(
                    insert(self.table).values(
                        principal=self.principal,
                        key=self.key,
                        request_hash=self.request_hash,
                        created_at=now,
                    )
                )
        except IntegrityError:
            # A concurrent request with this key committed first: replay it.
            row = await self._existing()
            if row is None:
                raise IdempotencyKeyInFlight(
                    f"Retry the request with {HEADER} '{self.key}' later."
                ) from None
            return self._replay(row)
        return None

    async def respond(
        self, status_code: int, body: BaseModel, headers: dict[str, str] | None = None
    ) -> Response:
        """The response, stored under the key (in the same transaction) when one was sent."""
        payload = body.model_dump_json().encode()
        all_headers = {"content-type": "application/json", **(headers or {})}
        if self.key is not None:
            kept = {k: v for k, v in all_headers.items() if k.lower() in KEPT_HEADERS}
            await self.session.execute(
                update(self.table)
                .where(self._where())
                .values(status_code=status_code, response_body=payload, response_headers=kept)
            )
        return Response(payload, status_code=status_code, headers=all_headers)


def _request_hash(request: Request, body: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.url.path}?{request.url.query}\n".encode())
    digest.update(body)
    return digest.hexdigest()


async def _idempotency(
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            description="Any unique value (a UUID): a retry with the same key and "
            "request replays the first answer instead of creating twice. Kept 24 h.",
        ),
    ] = None,
) -> Idempotency:
    if idempotency_key is not None and not (
        0 < len(idempotency_key) <= MAX_KEY_LENGTH and idempotency_key.isprintable()
    ):
        raise InvalidIdempotencyKey(f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable characters.")
    body = await request.body()
    idem = Idempotency(
        session, IDEMPOTENCY_KEYS, principal, idempotency_key, _request_hash(request, body)
    )
    if (replayed := await idem.replay()) is not None:
        raise EarlyResponse(replayed)
    return idem


IdempotencyDep = Annotated[Idempotency, Depends(_idempotency)]
"""A creating POST's ``Idempotency-Key``: a retry is answered with the first
answer before the route runs; the route answers with :meth:`Idempotency.respond`."""


async def purge_expired(
    db: Database, table: Table, *, now: datetime | None = None, **bounds: Any
) -> int:
    """Delete the keys older than :data:`TTL` (``purge-idempotency``); how many.

    Expiry is ``created_at + TTL``: :meth:`Idempotency.replay` already treats
    an older key as absent, so deleting it changes no answer.
    """
    cutoff = (now or datetime.now(UTC)) - TTL
    return await delete_in_batches(db, table, table.c.created_at < cutoff, **bounds)

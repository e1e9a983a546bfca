"""Imports that outgrow a request: the upload kept in the database, run by the worker.

``POST .../import?async=true`` (or ``Prefer: respond-async``) spools the body
as any import does, then copies it into ``ingest_uploads``, a block a row,
records the import in ``ingest_imports`` and enqueues its job (kit/outbox.py),
all in one transaction, and answers 202 with the import's status URL. The
worker that takes the job (any process, any host: the file is in the
database, not on the disk of the process that received it) writes the blocks
back to a temporary file, runs the service's import and records its outcome:
the report, or the problem, with the HTTP status a synchronous import would
have answered. The blocks are deleted once the import is done.

A job may run twice (the outbox delivers at least once): a finished import is
not run again, and a service records the outcome of a committed import in
the import's own transaction (:func:`record_outcome` with its session), so a
commit and its report are never apart.

Each service declares the two tables in its own metadata with
:func:`import_tables` (its Alembic history creates them).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
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
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from spp_shared.contracts.ingest import ImportState
from spp_shared.kit.db import Database, UTCDateTime, WriteSession, new_metadata
from spp_shared.kit.ids import new_ulid
from spp_shared.kit.ingest.body import BLOCK, Upload, temp_file
from spp_shared.kit.ingest.formats import Container
from spp_shared.kit.outbox import enqueue

_KIT_METADATA = new_metadata()

IMPORTS: Final = Table(
    "ingest_imports",
    _KIT_METADATA,
    Column("id", String(26), primary_key=True),
    Column("kind", String(100), nullable=False),  # the job kind that runs it
    Column("state", String(16), nullable=False),
    Column("owner", String(200), nullable=False),  # the caller's subject
    Column("container", String(16), nullable=False),
    Column("size", Integer, nullable=False),
    Column("params", JSON, nullable=False),  # the service's (options, the caller)
    Column("status", Integer, nullable=True),
    Column("result", JSON, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

UPLOADS: Final = Table(
    "ingest_uploads",
    _KIT_METADATA,
    Column(
        "import_id", String(26), ForeignKey("ingest_imports.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)  # fmt: skip


def import_tables(metadata: MetaData) -> tuple[Table, Table]:
    """The two tables, declared in a service's own metadata (Alembic sees them there)."""
    return IMPORTS.to_metadata(metadata), UPLOADS.to_metadata(metadata)


def _now() -> datetime:
    return datetime.now(UTC)


async def store_upload(
    session: WriteSession,
    upload: Upload,
    *,
    kind: str,
    owner: str,
    params: Mapping[str, Any],
) -> str:
    """Copy a spooled upload into the database and enqueue its job; the import's id.

    In ``session``'s transaction: nothing is kept, and nothing runs, unless it
    commits. Memory: one block of the file at a time.
    """
    import_id = new_ulid()
    now = _now()
    size = upload.path.stat().st_size
    await session.execute(
        insert(IMPORTS).values(
            id=import_id,
            kind=kind,
            state=ImportState.pending,
            owner=owner,
            container=upload.container.value,
            size=size,
            params=dict(params),
            created_at=now,
            updated_at=now,
        )
    )
    with upload.path.open("rb") as file:
        seq = 0
        while block := file.read(BLOCK):
            await session.execute(insert(UPLOADS).values(import_id=import_id, seq=seq, data=block))
            seq += 1
    await enqueue(session, kind, {"import_id": import_id})
    return import_id


async def get_import(session: AsyncSession, import_id: str) -> RowMapping | None:
    columns = [c for c in IMPORTS.c if c.name != "params"]
    row = await session.execute(select(*columns).where(IMPORTS.c.id == import_id))
    return row.mappings().one_or_none()


async def claim_import(db: Database, import_id: str) -> RowMapping | None:
    """The import a job runs, marked running; None when it is done or gone
    (a job delivered again after its import finished)."""
    async with db.sessionmaker() as session:
        row = (
            (await session.execute(select(IMPORTS).where(IMPORTS.c.id == import_id)))
            .mappings()
            .one_or_none()
        )
        if row is None or row["state"] == ImportState.done:
            return None
        await session.execute(
            update(IMPORTS)
            .where(IMPORTS.c.id == import_id)
            .values(state=ImportState.running, updated_at=_now())
        )
        await session.commit()
        return row


@asynccontextmanager
async def uploaded_file(db: Database, import_id: str) -> AsyncIterator[Path]:
    """The stored upload as a temporary file (a block in memory at a time); deleted after."""
    file = temp_file()
    path = Path(file.name)
    try:
        with file:
            # A transaction: PostgreSQL opens a server-side cursor only in one.
            async with db.engine.connect() as conn:
                result = await conn.stream(
                    select(UPLOADS.c.data)
                    .where(UPLOADS.c.import_id == import_id)
                    .order_by(UPLOADS.c.seq)
                    .execution_options(yield_per=1)
                )
                async for (data,) in result:
                    file.write(data)
        yield path
    finally:
        os.unlink(path)


async def record_outcome(
    session: WriteSession, import_id: str, status: int, result: Mapping[str, Any]
) -> None:
    """The import is done: what a synchronous import would have answered, and
    its upload deleted. In ``session``'s transaction: give the import's own
    session when it commits, so its changes and its outcome commit together."""
    await session.execute(
        update(IMPORTS)
        .where(IMPORTS.c.id == import_id)
        .values(state=ImportState.done, status=status, result=dict(result), updated_at=_now())
    )
    await session.execute(delete(UPLOADS).where(UPLOADS.c.import_id == import_id))


def container_of_import(row: Mapping[str, Any]) -> Container:
    return Container(row["container"])

"""Reading records in batches, and one batch's write overlapping the next batch's mapping.

A bulk import maps each record to a row with plain functions (per-row pydantic
would cost as much as the write, PERFORMANCE.md), then handles a batch: one
look-up, one bulk write. :func:`mapped_batches` does the reading and the
mapping, giving the event loop a turn every few rows so the previous batch's
write (an :class:`Overlap`) moves on meanwhile; memory stays bounded by the
batch size whatever the file's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any, Final, Generic, TypeVar

from spp_shared.kit.ingest.records import Record, RowError

T = TypeVar("T")

DEFAULT_BATCH: Final = 2000
# Rows mapped between two chances for the pending write to progress.
YIELD_EVERY: Final = 100


@dataclass(slots=True)
class Batch(Generic[T]):
    records: int  # records read, mapped or not
    rows: list[T]  # the records that mapped


async def mapped_batches(
    records: Iterable[Record],
    map_record: Callable[[int, Any], T],
    on_error: Callable[[int, RowError], None],
    *,
    batch_size: int = DEFAULT_BATCH,
) -> AsyncIterator[Batch[T]]:
    """Batches of ``map_record(line, record)``; a :class:`RowError` (raised by
    the mapper, or read in place of a record) goes to ``on_error`` instead."""
    it = iter(records)
    while chunk := list(islice(it, batch_size)):
        rows: list[T] = []
        for n, (line, raw) in enumerate(chunk):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let the pending write move on
            try:
                if isinstance(raw, RowError):
                    raise raw
                rows.append(map_record(line, raw))
            except RowError as exc:
                on_error(line, exc)
        yield Batch(len(chunk), rows)


class Overlap:
    """One write at a time, running while the caller prepares the next batch.

    The database works in its own thread (SQLite) or server (PostgreSQL)
    meanwhile. :meth:`settle` waits for the write before the session is used
    again (its errors surface there); :meth:`abandon` lets it finish, whatever
    its outcome, so a rollback finds the connection idle rather than mid-COPY.
    """

    def __init__(self) -> None:
        self._task: asyncio.Future[None] | None = None

    async def start(self, write: Awaitable[None]) -> None:
        await self.settle()
        self._task = asyncio.ensure_future(write)

    async def settle(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            await task

    async def abandon(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            with contextlib.suppress(Exception):
                await task

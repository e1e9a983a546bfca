"""Keyset cursors for the newest-first listings: ``(time, id)`` pairs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import BaseModel

from spp_shared.kit.pagination import InvalidCursor, Page, decode_cursor, encode_cursor

Row = TypeVar("Row")
Out = TypeVar("Out", bound=BaseModel)


def time_cursor(at: datetime, row_id: str) -> str:
    return encode_cursor([at.isoformat(), row_id])


def after_time_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    try:
        at_text, row_id = key
        at = datetime.fromisoformat(at_text)
        # Only UTC times are issued; another offset may have no UTC
        # equivalent (year 9999 at -01:00), which the column cannot bind.
        if at.tzinfo is None or not isinstance(row_id, str):
            raise ValueError("not an issued cursor")
        at = at.astimezone(UTC)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidCursor("The cursor is not one this API issued.") from exc
    return at, row_id


def newest_first_page(
    page: type[Page[Out]],
    rows: Sequence[Row],
    limit: int,
    out: Callable[[Row], Out],
    key: Callable[[Row], tuple[datetime, str]],
) -> Page[Out]:
    """A page from ``limit + 1`` rows read newest first: the extra row only
    says there is more, and the last row shown is where the next page starts."""
    items = [out(r) for r in rows[:limit]]
    next_cursor = time_cursor(*key(rows[limit - 1])) if len(rows) > limit else None
    return page(items=items, next_cursor=next_cursor)


async def kept_rows(
    read: Callable[[Row | None, int], Awaitable[Sequence[Row]]],
    keep: Callable[[Row], bool],
    limit: int,
) -> list[Row]:
    """Up to ``limit + 1`` rows that ``keep`` accepts, in the listing's order.

    ``read(last, n)`` reads ``n`` rows after ``last`` (``None``: from the
    start). Batches are read until a page and one more row are kept, or the
    rows run out; a page built from the answer pages on from its last row
    shown, whatever was skipped before it.
    """
    kept: list[Row] = []
    last: Row | None = None
    while True:
        rows = await read(last, limit + 1)
        kept += [r for r in rows if keep(r)]
        if len(kept) > limit or len(rows) <= limit:
            return kept
        last = rows[-1]

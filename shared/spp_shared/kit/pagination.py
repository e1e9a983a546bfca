"""Keyset pages: ``limit`` + ``cursor`` in, ``{items, next_cursor}`` out.

A listing is ordered by a stable key that ends with a unique column
(``id``, ``code``, or ``(created_at, id)``...), and its cursor is that key
of the last row shown, opaque to clients. A page reads ``limit + 1`` rows:
the extra one only says there is more. :class:`Keyset` does all of it, so
a listing is one call::

    await BY_ID.page(
        Page[NetworkOut], cursor=cursor, limit=limit,
        read=lambda after, n: repo.list_networks(session, after=after, limit=n),
        out=network_out, key=lambda n: n.code,
    )

and the repository reads ``n`` rows past ``after`` with :func:`keyset_slice`.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

import orjson
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.orm import QueryableAttribute

from spp_shared.kit.errors import BadRequest

T = TypeVar("T")
K = TypeVar("K")
Row = TypeVar("Row")
Out = TypeVar("Out")

DEFAULT_LIMIT = 50


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; absent on the last."
    )


class InvalidCursor(BadRequest):
    type_ = "invalid-cursor"
    title = "Invalid cursor"


_NOT_ISSUED = "The cursor is not one this API issued."


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> list[Any] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise InvalidCursor(_NOT_ISSUED) from exc
    if not isinstance(key, list) or any(isinstance(k, str) and "\x00" in k for k in key):
        raise InvalidCursor(_NOT_ISSUED)
    return key


# --- the parts of a key: how each is read back from a cursor ------------------------
#
# A part raises ValueError or TypeError on what no cursor of ours holds; the
# value then never reaches SQL (PostgreSQL refuses a NUL in text, a time
# without a zone cannot be compared with a UTC column).

Part = Callable[[Any], Any]


def as_text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not text")
    return value


def as_utc_time(value: Any) -> datetime:
    at = datetime.fromisoformat(as_text(value))
    # Only UTC times are issued; another offset may have no UTC equivalent
    # (year 9999 at -01:00), which the column cannot bind.
    if at.tzinfo is None:
        raise ValueError("not an issued time")
    return at.astimezone(UTC)


def as_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError("not a number")
    return float(value)


def as_integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("not an integer")
    return value


def _encode_part(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class Keyset(Generic[K]):
    """The cursor of a listing ordered by a key of ``parts``.

    ``K`` is the key: the value itself for one part (``Keyset[str]``), a
    tuple for several (``Keyset[tuple[datetime, str]]``).
    """

    def __init__(self, *parts: Part) -> None:
        if not parts:
            raise ValueError("a keyset has at least one part")
        self.parts = parts

    def cursor(self, key: K) -> str:
        values = key if isinstance(key, tuple) else (key,)
        return encode_cursor([_encode_part(v) for v in values])

    def after(self, cursor: str | None) -> K | None:
        """The key a page starts after; None for the first page."""
        values = decode_cursor(cursor)
        if values is None:
            return None
        if len(values) != len(self.parts):
            raise InvalidCursor(_NOT_ISSUED)
        try:
            key = tuple(part(v) for part, v in zip(self.parts, values, strict=True))
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidCursor(_NOT_ISSUED) from exc
        return cast(K, key[0] if len(key) == 1 else key)

    def cut(
        self, rows: Sequence[Row], limit: int, key: Callable[[Row], K]
    ) -> tuple[Sequence[Row], str | None]:
        """The rows of a page and the next cursor, from ``limit + 1`` rows (or
        more) in the listing's order: the last row shown is where the next
        page starts."""
        if len(rows) <= limit:
            return rows, None
        return rows[:limit], self.cursor(key(rows[limit - 1]))

    async def page(
        self,
        page_type: type[Page[Out]],
        *,
        cursor: str | None,
        limit: int,
        read: Callable[[K | None, int], Awaitable[Sequence[Row]]],
        out: Callable[[Row], Out],
        key: Callable[[Row], K],
        keep: Callable[[Row], bool] | None = None,
    ) -> Page[Out]:
        """One page: ``read(after, n)`` reads ``n`` rows past key ``after``
        (``None``: from the start) in the listing's order.

        ``keep`` drops rows the caller may not see, decided in Python (a rule
        SQL cannot spell): batches are then read until a page and one more
        row are kept, or the rows run out.
        """
        after = self.after(cursor)
        if keep is None:
            rows = await read(after, limit + 1)
        else:
            rows = await _kept_rows(read, keep, key, after, limit)
        shown, next_cursor = self.cut(rows, limit, key)
        return page_type(items=[out(r) for r in shown], next_cursor=next_cursor)


async def _kept_rows(
    read: Callable[[K | None, int], Awaitable[Sequence[Row]]],
    keep: Callable[[Row], bool],
    key: Callable[[Row], K],
    after: K | None,
    limit: int,
) -> list[Row]:
    kept: list[Row] = []
    while True:
        rows = await read(after, limit + 1)
        kept += [r for r in rows if keep(r)]
        if len(kept) > limit or len(rows) <= limit:
            return kept
        after = key(rows[-1])


Column = ColumnElement[Any] | QueryableAttribute[Any]
Statement = TypeVar("Statement", bound=Select[Any])


def keyset_slice(
    stmt: Statement,
    columns: Sequence[Column],
    after: Any,
    limit: int,
    *,
    descending: bool = False,
) -> Statement:
    """``stmt`` ordered by ``columns``, the ``limit`` rows past key ``after``
    (``None``: from the start): the read behind a page, order and condition
    spelled from the same columns so they cannot disagree."""
    stmt = stmt.order_by(*(c.desc() if descending else c.asc() for c in columns)).limit(limit)
    if after is None:
        return stmt
    values = after if isinstance(after, tuple) else (after,)
    if len(values) != len(columns):
        raise ValueError(f"a key of {len(columns)} parts was expected, got {len(values)}")

    def past(column: Column, value: Any) -> ColumnElement[bool]:
        return column < value if descending else column > value

    # ``a > x OR (a = x AND b > y)`` rather than a row value ``(a, b) > (x,
    # y)``: both databases use the index on ``(a, b)`` for it.
    condition = past(columns[-1], values[-1])
    for column, value in zip(reversed(columns[:-1]), reversed(values[:-1]), strict=True):
        condition = or_(past(column, value), and_(column == value, condition))
    return stmt.where(condition)


BY_ID: Keyset[str] = Keyset(as_text)
"""Listings by a unique text column (ids, codes), ascending."""

BY_TIME_AND_ID: Keyset[tuple[datetime, str]] = Keyset(as_utc_time, as_text)
"""Listings by a time, ties broken by id (newest first, most often)."""

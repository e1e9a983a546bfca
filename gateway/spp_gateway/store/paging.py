"""Keyset cursors for the newest-first listings: ``(time, id)`` pairs."""

from __future__ import annotations

from datetime import UTC, datetime

from spp_shared.kit.pagination import InvalidCursor, decode_cursor, encode_cursor


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

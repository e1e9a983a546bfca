"""Keyset cursors for the newest-first listings: ``(time, id)`` pairs."""

from __future__ import annotations

from datetime import datetime

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
    except (TypeError, ValueError) as exc:
        raise InvalidCursor("The cursor is not one this API issued.") from exc
    if at.tzinfo is None or not isinstance(row_id, str):
        raise InvalidCursor("The cursor is not one this API issued.")
    return at, row_id

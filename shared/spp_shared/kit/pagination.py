"""Opaque keyset cursors: ``limit`` + ``cursor`` in, ``{items, next_cursor}`` out."""

from __future__ import annotations

import base64
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, Field

from spp_shared.kit.errors import BadRequest

T = TypeVar("T")

DEFAULT_LIMIT = 50


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; absent on the last."
    )


class InvalidCursor(BadRequest):
    type_ = "invalid-cursor"
    title = "Invalid cursor"


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> list[Any] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise InvalidCursor("The cursor is not one this API issued.") from exc
    if not isinstance(key, list) or any(isinstance(k, str) and "\x00" in k for k in key):
        raise InvalidCursor("The cursor is not one this API issued.")
    return key

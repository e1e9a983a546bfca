"""Row ids: opaque, stable, and sortable by creation time (the ULID layout).

26 Crockford base32 characters: 48 bits of milliseconds, then 80 random
bits. Sorting by id sorts by creation to the millisecond, so an id is a
stable tie-breaker for keyset pages over a time column.
"""

from __future__ import annotations

import os
import re
import time

ULID_LENGTH = 26
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def new_ulid() -> str:
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(ULID_LENGTH):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_ulid(text: str) -> bool:
    """Whether ``text`` has the shape of an id made by :func:`new_ulid`."""
    return _ULID.fullmatch(text) is not None

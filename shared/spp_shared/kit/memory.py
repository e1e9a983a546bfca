"""Giving a large operation's memory back to the operating system.

After a bulk import or export has freed its objects, the process's RSS
stays where the peak left it: CPython keeps cyclic garbage until a
collection, and glibc's malloc keeps freed pages of its heap for reuse
(dict and list tables above 512 bytes live there, not in CPython's own
arenas). ``malloc_trim(0)`` hands those pages back. Call
:func:`release_memory` once a large operation is over, not per request: a
full collection of a large heap costs milliseconds.
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None (macOS, musl, Windows: nothing to do).

    Looked up among the symbols the process already has (the C library is
    loaded), so no library search runs a subprocess.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, TypeError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_memory() -> None:
    """Collect garbage, then return malloc's free pages to the OS where glibc allows."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)

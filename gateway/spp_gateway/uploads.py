"""Streamed uploads in flight, per caller: so no caller holds every upload lane.

A streamed upload (an import) holds an upstream connection for as long as
its body flows. The gateway keeps those connections in their own pool (see
:mod:`spp_gateway.upstream`), and here caps how many one caller may hold at
once in this process: a head office sends its files one or two at a time;
a caller opening dozens at once is refused (429) rather than queued.
"""

from __future__ import annotations


class UploadSlots:
    """Counts the streamed uploads of each caller in this process."""

    __slots__ = ("_in_flight", "per_caller")

    def __init__(self, per_caller: int) -> None:
        self.per_caller = per_caller
        self._in_flight: dict[str, int] = {}

    def acquire(self, caller: str) -> bool:
        """Take a slot for ``caller``; False when it holds them all already."""
        held = self._in_flight.get(caller, 0)
        if held >= self.per_caller:
            return False
        self._in_flight[caller] = held + 1
        return True

    def release(self, caller: str) -> None:
        held = self._in_flight.get(caller, 0) - 1
        if held > 0:
            self._in_flight[caller] = held
        else:
            self._in_flight.pop(caller, None)

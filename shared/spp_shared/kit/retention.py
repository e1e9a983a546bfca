"""Deleting what is no longer kept: in batches, within a time budget.

Periodic commands (``purge-idempotency``, ``purge-jobs``, later the retention
purges) run from a scheduler (``make run``, Kubernetes CronJobs), so each must
end in bounded time and may simply be run again: one short transaction per
batch holds locks briefly, and a run that reaches its budget stops and leaves
the rest to the next one.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Table, delete, select, tuple_

from spp_shared.kit.db import Database

DEFAULT_BATCH_SIZE = 5000
DEFAULT_MAX_SECONDS = 240.0


async def delete_in_batches(
    db: Database,
    table: Table,
    where: Any,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> int:
    """Delete ``table``'s rows matching ``where``, ``batch_size`` at a time,
    until none is left or ``max_seconds`` have passed; how many went."""
    key = list(table.primary_key.columns)
    target = key[0] if len(key) == 1 else tuple_(*key)
    deadline = time.monotonic() + max_seconds
    total = 0
    while True:
        batch = select(*key).where(where).limit(batch_size)
        async with db.engine.begin() as conn:
            deleted = (await conn.execute(delete(table).where(target.in_(batch)))).rowcount
        total += deleted
        if deleted < batch_size or time.monotonic() >= deadline:
            return total

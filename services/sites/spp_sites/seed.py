"""Reference data every install has: the main national networks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from spp_sites import repository as repo
from spp_sites.models import Network

NETWORKS_FILE = Path(__file__).parent / "reference" / "networks.json"


async def seed_networks(session: AsyncSession) -> list[str]:
    """Insert the reference networks that are missing; never overwrite edits."""
    wanted = json.loads(NETWORKS_FILE.read_text(encoding="utf-8"))
    existing = {n.code for n in await repo.all_networks(session)}
    stamp = datetime.now(UTC)
    added = []
    for item in wanted:
        if item["code"] in existing:
            continue
        session.add(Network(**item, created_at=stamp, updated_at=stamp, version=1))
        added.append(item["code"])
    await session.flush()
    return added

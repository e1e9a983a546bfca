"""The credential stores under concurrency: one database read per cold key."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event

from spp_gateway.store import AgentDirectory, ApiKeyStore
from spp_shared.contracts.access import AgentMappingCreate, ApiKeyCreate
from spp_shared.contracts.permissions import Role
from spp_shared.kit.db import Database
from spp_shared.kit.identity import Principal, PrincipalKind

pytestmark = pytest.mark.anyio

ADMIN = Principal(
    subject="bootstrap-admin", kind=PrincipalKind.bootstrap, roles=[Role.programme_admin]
)


def count_reads(db: Database) -> list[str]:
    seen: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(db.read_engine.sync_engine, "before_cursor_execute", on_execute)
    return seen


async def test_fifty_requests_with_a_cold_key_read_it_once(gateway_database: Database) -> None:
    store = ApiKeyStore(gateway_database, cache_seconds=5, last_used_resolution=60)
    async with gateway_database.sessionmaker() as session, session.begin():
        created = await store.create_key(
            session,
            ADMIN,
            ApiKeyCreate(name="load", owner="tests", roles=[Role.network_manager], network="caf"),
        )
    store.forget(created.id)
    reads = count_reads(gateway_database)
    results = await asyncio.gather(*(store.authenticate(created.secret) for _ in range(50)))
    assert all(p is not None and p.network == "caf" for p in results)
    assert len([s for s in reads if "api_keys" in s]) == 1
    wrong = created.secret[:-1] + ("A" if created.secret[-1] != "A" else "B")
    assert await store.authenticate(wrong) is None  # from the cache, still checked
    await store.close()


async def test_fifty_requests_of_a_new_agent_read_the_mappings_once(
    gateway_database: Database,
) -> None:
    agents = AgentDirectory(gateway_database, cache_seconds=5)
    async with gateway_database.sessionmaker() as session, session.begin():
        await agents.create_mapping(
            session,
            ADMIN,
            AgentMappingCreate(
                match="email_domain", value="caf.fr", network="caf", roles=[Role.agent]
            ),
        )
    reads = count_reads(gateway_database)
    results = await asyncio.gather(
        *(
            agents.principal_for(
                subject="a-1", email="x@caf.fr", email_domain="caf.fr", siret=None, uid=None
            )
            for _ in range(50)
        )
    )
    assert {p.network for p in results} == {"caf"}
    assert len([s for s in reads if "agent_mappings" in s]) == 1

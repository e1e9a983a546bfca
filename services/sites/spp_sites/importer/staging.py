"""The keys an import has taken so far, in a temporary table of its own connection.

A key given twice in one file is refused with the line that had it first, so
the import must remember, for every row, its (network, external code) and
its SP+ code. Kept in Python that was a few hundred bytes a row (a 1.5
million row file held 300 MB until the end); kept here it costs the process
one batch (ADR 0017). Each batch asks for the lines of its own keys, then
adds the keys it took.

The table lives in the import's transaction: a rollback removes it (both
databases roll back DDL), and :func:`drop` removes it before a commit. It
sits in the database's temporary space (PostgreSQL's temp buffers, SQLite's
temporary file), not in the process's memory.

One table holds both kinds of key: SP+ codes are unique across networks, so
they are kept under the network ``''``, which no network code can be.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Integer, String

from spp_shared.kit.db import WriteSession, is_postgresql

TABLE: Final = "spp_import_seen"
SP_CODE: Final = ""  # the network under which SP+ codes are kept

Key = tuple[str, str]

# Named in the temporary schema, so no other table of that name can be dropped.
_PG_DROP: Final = text(f"DROP TABLE IF EXISTS pg_temp.{TABLE}")
_SQLITE_DROP: Final = text(f"DROP TABLE IF EXISTS temp.{TABLE}")
_CREATE: Final = text(
    f"CREATE TEMPORARY TABLE {TABLE} ("
    "network VARCHAR NOT NULL, code VARCHAR NOT NULL, line INTEGER NOT NULL, "
    "PRIMARY KEY (network, code))"
)
# A key is only ever added once (a second one is a rejected row), but the
# upsert keeps the last line if that ever changes, as a dict would.
_UPSERT: Final = " ON CONFLICT (network, code) DO UPDATE SET line = excluded.line"

_PG_ADD: Final = text(
    f"INSERT INTO {TABLE} (network, code, line) "
    "SELECT * FROM unnest(:nets, :codes, :lines)" + _UPSERT
).bindparams(
    bindparam("nets", type_=ARRAY(String)),
    bindparam("codes", type_=ARRAY(String)),
    bindparam("lines", type_=ARRAY(Integer)),
)
# LATERAL with OFFSET 0 (a subquery the planner cannot flatten into a join):
# one probe of the primary key per key of the batch, whatever the table's
# size or statistics. As a plain join it was planned as a hash join over the
# whole table, which grew with every batch (ADR 0020).
_PG_LINES: Final = text(
    "SELECT k.network, k.code, s.line FROM unnest(:nets, :codes) AS k(network, code) "
    f"CROSS JOIN LATERAL (SELECT line FROM {TABLE} "
    f"WHERE {TABLE}.network = k.network AND {TABLE}.code = k.code OFFSET 0) AS s"
).bindparams(bindparam("nets", type_=ARRAY(String)), bindparam("codes", type_=ARRAY(String)))

# SQLite: the batch as one JSON array, read by json_each (one statement, one
# parameter, whatever the batch size). CROSS JOIN keeps the array outside, so
# each key is one look-up in the table's primary key.
_SQLITE_ADD: Final = text(
    f"INSERT INTO {TABLE} (network, code, line) "
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
    "json_extract(value, '$[2]') FROM json_each(:rows) WHERE true" + _UPSERT
)
_SQLITE_LINES: Final = text(
    f"SELECT s.network, s.code, s.line FROM json_each(:keys) AS k CROSS JOIN {TABLE} AS s "
    "ON s.network = json_extract(k.value, '$[0]') AND s.code = json_extract(k.value, '$[1]')"
)


async def create(session: WriteSession) -> None:
    """An empty table for this import, in its transaction."""
    await drop(session)
    await session.execute(_CREATE)


async def drop(session: WriteSession) -> None:
    """Before a commit (a rollback removes the table by itself)."""
    await session.execute(_PG_DROP if is_postgresql(session) else _SQLITE_DROP)


async def lines(session: AsyncSession, keys: Sequence[Key]) -> dict[Key, int]:
    """The line of each of ``keys`` that an earlier batch took."""
    if not keys:
        return {}
    if is_postgresql(session):
        params = {"nets": [k[0] for k in keys], "codes": [k[1] for k in keys]}
        result = await session.execute(_PG_LINES, params)
    else:
        result = await session.execute(_SQLITE_LINES, {"keys": orjson.dumps(keys).decode()})
    return {(net, code): line for net, code, line in result}


async def add(session: WriteSession, taken: Mapping[Key, int]) -> None:
    """Remember ``taken`` keys (each once) and the line that took each."""
    if not taken:
        return
    if is_postgresql(session):
        params = {
            "nets": [k[0] for k in taken],
            "codes": [k[1] for k in taken],
            "lines": list(taken.values()),
        }
        await session.execute(_PG_ADD, params)
    else:
        rows = [(net, code, line) for (net, code), line in taken.items()]
        await session.execute(_SQLITE_ADD, {"rows": orjson.dumps(rows).decode()})

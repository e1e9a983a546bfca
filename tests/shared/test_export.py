"""The kit's streaming export on its own: a table and a contract of the test's.

On the suite's database (SQLite's server-side cursor, or PostgreSQL's COPY
with ``SPP_TEST_DATABASE_URL``): the same values in CSV and JSON Lines,
awkward text intact, a stream given up half-way leaves the pool usable.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, Field
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Float,
    Integer,
    String,
    Table,
    select,
)

from spp_shared.kit.db import Database, UTCDateTime, new_metadata
from spp_shared.kit.export import (
    ExportFormat,
    Resource,
    datapackage,
    stream_rows,
    table_fields,
)
from spp_shared.kit.ingest import insert_rows

pytestmark = pytest.mark.anyio


class Colour(StrEnum):
    red = "red"
    blue = "blue"


class ThingRow(BaseModel):
    id: int = Field(description="Key.")
    label: str | None = Field(max_length=50, description="Free text.")
    colour: Colour
    ratio: float | None
    active: bool | None
    day: date | None
    details: dict[str, Any] | None
    stamp: datetime = Field(description="Last change.")


METADATA = new_metadata()
THINGS = Table(
    "export_things",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("label", String(50)),
    Column("colour", String(8), nullable=False),
    Column("ratio", Float),
    Column("active", Boolean),
    Column("day", Date),
    Column("details", JSON(none_as_null=True)),
    Column("stamp", UTCDateTime(), nullable=False),
)
FIELDS = table_fields(ThingRow)
QUERY = select(*(THINGS.c[f.name].label(f.name) for f in FIELDS)).order_by(THINGS.c.id)
AWKWARD = 'a "quoted", comma; back\\slash \\" and\nline\ttab é \x01'
STAMP = datetime(2026, 12, 1, 8, 30, 0, 123456, tzinfo=UTC)


def test_table_fields_come_from_the_contract() -> None:
    by_name = {f.name: f.descriptor() for f in FIELDS}
    assert by_name["id"] == {
        "name": "id",
        "type": "integer",
        "description": "Key.",
        "constraints": {"required": True},
    }
    assert by_name["label"] == {
        "name": "label",
        "type": "string",
        "description": "Free text.",
        "constraints": {"maxLength": 50},
    }
    assert by_name["colour"]["constraints"] == {"enum": ["red", "blue"], "required": True}
    assert [by_name[n]["type"] for n in ("ratio", "active", "day", "details", "stamp")] == [
        "number",
        "boolean",
        "date",
        "object",
        "datetime",
    ]
    package = datapackage("things", [Resource("things", "things.csv", FIELDS, primary_key=("id",))])
    assert package["profile"] == "tabular-data-package"
    assert package["resources"][0]["schema"]["primaryKey"] == ["id"]
    assert [f["name"] for f in package["resources"][0]["schema"]["fields"]] == list(by_name)


@pytest.fixture
async def db(scratch_url: str) -> AsyncIterator[Database]:
    database = Database(scratch_url)
    async with database.engine.begin() as conn:
        await conn.run_sync(METADATA.create_all)
    plain = {"ratio": None, "active": None, "day": None, "details": None}
    async with database.sessionmaker() as session:
        await insert_rows(
            session,
            THINGS,
            [f.name for f in FIELDS],
            [
                {
                    "id": 1,
                    "label": AWKWARD,
                    "colour": "red",
                    "ratio": 0.1,
                    "active": True,
                    "day": date(2026, 2, 28),
                    "details": {"k": [1, "\\"], "é": None},
                    "stamp": STAMP,
                },
                {
                    "id": 2,
                    "label": None,
                    "colour": "blue",
                    "ratio": None,
                    "active": False,
                    "day": None,
                    "details": None,
                    "stamp": STAMP + timedelta(seconds=1),
                },
                *(
                    plain | {"id": i, "label": f"n{i}", "colour": "red", "stamp": STAMP}
                    for i in range(3, 3001)
                ),
            ],
        )
        await session.commit()
    yield database
    await database.dispose()


async def collect(db: Database, fmt: ExportFormat) -> str:
    return b"".join([c async for c in stream_rows(db, QUERY, FIELDS, fmt)]).decode()


async def test_both_formats_carry_the_same_values_whatever_the_text(db: Database) -> None:
    table = list(csv.DictReader(io.StringIO(await collect(db, ExportFormat.csv))))
    lines = [orjson.loads(line) for line in (await collect(db, ExportFormat.jsonl)).splitlines()]
    assert len(table) == len(lines) == 3000
    assert [r["id"] for r in table[:3]] == ["1", "2", "3"]
    first, second = lines[0], lines[1]
    assert first == {
        "id": 1,
        "label": AWKWARD,
        "colour": "red",
        "ratio": 0.1,
        "active": True,
        "day": "2026-02-28",
        "details": {"k": [1, "\\"], "é": None},
        "stamp": "2026-12-01T08:30:00.123456Z",
    }
    assert second["active"] is False
    assert second["label"] is None
    assert second["stamp"] == "2026-12-01T08:30:01.123456Z"
    row = table[0]
    assert row["label"] == AWKWARD
    assert (row["ratio"], row["active"], row["day"]) == ("0.1", "true", "2026-02-28")
    assert orjson.loads(row["details"]) == first["details"]
    assert row["stamp"] == first["stamp"]
    assert (table[1]["active"], table[1]["label"], table[1]["details"]) == ("false", "", "")


async def test_a_stream_given_up_half_way_leaves_the_pool_usable(db: Database) -> None:
    for fmt in ExportFormat:
        chunks = stream_rows(db, QUERY, FIELDS, fmt)
        assert await anext(chunks)
        await chunks.aclose()  # the client left
        assert db.read_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        text = await collect(db, fmt)
        records = csv.reader(io.StringIO(text)) if fmt is ExportFormat.csv else text.splitlines()
        assert len(list(records)) == 3000 + (fmt is ExportFormat.csv)


async def test_a_query_that_is_not_its_fields_is_refused(db: Database) -> None:
    wrong = select(THINGS.c.id.label("id"))
    with pytest.raises(ValueError, match="not its fields"):
        await anext(stream_rows(db, wrong, FIELDS, ExportFormat.csv))

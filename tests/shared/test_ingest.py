"""The kit's bulk-ingest pipeline, on its own: no sites rules, a table of the test's.

Formats and records on files the test writes; the bulk insert on the suite's
database (SQLite, or PostgreSQL with ``SPP_TEST_DATABASE_URL``); the spooled
body through a small app of the test's over HTTP (ASGI transport).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import (
    JSON,
    Column,
    Date,
    Float,
    Integer,
    String,
    Table,
    UniqueConstraint,
    select,
)
from sqlalchemy.exc import IntegrityError

from spp_shared.contracts.ingest import ImportReportBase
from spp_shared.kit.db import Database, UTCDateTime, is_postgresql, new_metadata
from spp_shared.kit.errors import UnsupportedMediaType, install_problem_handlers
from spp_shared.kit.ingest import (
    Container,
    FileProblem,
    Overlap,
    ReportBuilder,
    RowError,
    insert_rows,
    mapped_batches,
    open_source,
    path_container,
    spooled_body,
)
from spp_shared.kit.ingest.formats import container_of, part_container
from spp_shared.kit.ingest.records import MAX_RECORD_SIZE

pytestmark = pytest.mark.anyio


# --- formats ------------------------------------------------------------------


def test_the_container_is_told_by_media_type_then_part_name_then_first_byte() -> None:
    assert container_of("text/csv; charset=utf-8") is Container.csv
    assert container_of("application/jsonl") is Container.ndjson
    assert container_of("multipart/form-data; boundary=x") is Container.multipart
    with pytest.raises(UnsupportedMediaType):
        container_of("application/json")
    assert part_container(None, "results.JSONL", b"") is Container.ndjson
    assert part_container("application/octet-stream", None, b"\xef\xbb\xbf {") is Container.ndjson
    assert part_container(None, None, b"a,b\n") is Container.csv
    assert path_container(Path("x.ndjson")) is Container.ndjson
    assert path_container(Path("x.csv")) is Container.csv


# --- records ------------------------------------------------------------------


def read(path: Path, container: Container) -> tuple[list[str], list[tuple[int, Any]]]:
    with ExitStack() as stack:
        source = open_source(path, container, stack)
        return source.header, list(source.records)


@pytest.mark.parametrize(("sep", "bom"), [(",", False), (";", True), (";", False), (",", True)])
def test_csv_with_either_delimiter_and_an_optional_bom(tmp_path: Path, sep: str, bom: bool) -> None:
    text = f'"code"{sep}label{sep}value\nA1{sep}"two\nlines"{sep}1,5\n\nA2{sep}x{sep}\n'
    if sep == ",":
        text = text.replace("1,5", '"1,5"')
    path = tmp_path / "f.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    header, records = read(path, Container.csv)
    assert header == ["code", "label", "value"]
    # Lines are where each record starts: the quoted line break and the blank
    # line are counted.
    assert records == [(2, ["A1", "two\nlines", "1,5"]), (5, ["A2", "x", ""])]


def test_ndjson_lines_and_the_lines_that_are_not_objects(tmp_path: Path) -> None:
    path = tmp_path / "f.ndjson"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n[1]\n{"a":\n{"a": "\xc3\xa9"}\n')
    _, records = read(path, Container.ndjson)
    assert [line for line, _ in records] == [1, 3, 4, 5]
    assert records[0][1] == {"a": 1}
    assert records[3][1] == {"a": "é"}
    assert isinstance(records[1][1], RowError)
    assert "JSON object" in records[1][1].reason
    assert isinstance(records[2][1], RowError)
    assert "invalid JSON" in records[2][1].reason


def test_a_file_that_cannot_be_read_is_one_problem_naming_its_line(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(b"code,label\nA1,ok\nA2,caf\xe9\n")
    with pytest.raises(FileProblem) as caught:
        read(latin1, Container.csv)
    assert caught.value.errors == [{"line": 3, "reason": "byte 0xE9 is not UTF-8"}]

    long = tmp_path / "long.ndjson"
    long.write_bytes(b'{"a": 1}\n{"a": "' + b"x" * MAX_RECORD_SIZE + b'"}\n')
    with pytest.raises(FileProblem) as caught:
        read(long, Container.ndjson)
    assert caught.value.errors is not None
    assert caught.value.errors[0]["line"] == 2

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"\n")
    with pytest.raises(FileProblem, match="empty"):
        read(empty, Container.csv)


# --- batches, overlap, report -------------------------------------------------


async def test_records_are_mapped_in_batches_and_row_errors_go_aside() -> None:
    records: list[tuple[int, Any]] = [(n, n) for n in range(1, 8)]
    records[2] = (3, RowError(None, "not an object"))
    errors: list[tuple[int, str]] = []

    def double(line: int, value: Any) -> int:
        if value == 5:
            raise RowError("value", "five is refused")
        return int(value) * 2

    batches = [
        (batch.records, batch.rows)
        async for batch in mapped_batches(
            records, double, lambda line, exc: errors.append((line, exc.reason)), batch_size=3
        )
    ]
    assert batches == [(3, [2, 4]), (3, [8, 12]), (1, [14])]
    assert errors == [(3, "not an object"), (5, "five is refused")]


async def test_an_overlapped_write_runs_meanwhile_and_its_error_surfaces_at_settle() -> None:
    overlap = Overlap()
    done: list[str] = []

    async def write(name: str, fail: bool = False) -> None:
        await asyncio.sleep(0.01)
        if fail:
            raise RuntimeError(name)
        done.append(name)

    await overlap.start(write("one"))
    assert done == []  # started, not awaited
    await overlap.start(write("two", fail=True))  # settles "one" first
    assert done == ["one"]
    with pytest.raises(RuntimeError, match="two"):
        await overlap.settle()
    await overlap.start(write("three", fail=True))
    await overlap.abandon()  # the outcome no longer matters: no error
    await overlap.settle()  # nothing pending


class SomeReport(ImportReportBase):
    batches: int


def test_the_report_counts_everything_and_keeps_the_first_issues() -> None:
    builder = ReportBuilder("csv", dry_run=True, max_issues=2)
    builder.rows, builder.created = 5, 1
    for line in (2, 3, 4):
        builder.reject(line, "code", "bad")
    builder.warn(5, None, "odd")
    report = builder.build(SomeReport, committed=False, batches=1)
    assert (report.rejected, len(report.rejected_rows), report.truncated) == (3, 2, True)
    assert [i.line for i in report.rejected_rows] == [2, 3]
    assert (report.warnings_total, report.batches, report.format) == (1, 1, "csv")


# --- the one bulk insert ------------------------------------------------------

METADATA = new_metadata()
THINGS = Table(
    "things",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("code", String(8), nullable=False),
    Column("amount", Float),
    Column("details", JSON(none_as_null=True)),
    Column("day", Date),
    Column("stamp", UTCDateTime(), nullable=False),
    UniqueConstraint("code"),
)
COLUMNS = ("id", "code", "amount", "details", "day", "stamp")


@pytest.fixture
async def db(scratch_url: str) -> AsyncIterator[Database]:
    database = Database(scratch_url)
    async with database.engine.begin() as conn:
        await conn.run_sync(METADATA.create_all)
    yield database
    await database.dispose()


PARIS_WINTER = timezone(timedelta(hours=1))


def things(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "code": f"C{i}",
            "amount": i / 4 if i % 3 else None,
            "details": {"n": i, "tags": ["a", "é"]} if i % 2 else None,
            "day": date(2026, 1, 1) + timedelta(days=i),
            # Not UTC: the column's type decorator converts it, on both paths.
            "stamp": datetime(2026, 12, 1, 9, 30, tzinfo=PARIS_WINTER) + timedelta(seconds=i),
        }
        for i in range(start, start + n)
    ]


async def test_insert_rows_writes_every_type_in_the_callers_transaction(db: Database) -> None:
    rows = things(50)
    async with db.sessionmaker() as session:
        await insert_rows(session, THINGS, COLUMNS, rows)
        await insert_rows(session, THINGS, COLUMNS, [])
        await session.rollback()
    async with db.read_sessionmaker() as session:
        assert (await session.execute(select(THINGS))).all() == []
    async with db.sessionmaker() as session:
        await insert_rows(session, THINGS, COLUMNS, rows)
        await session.commit()
    async with db.read_sessionmaker() as session:
        got = [dict(r) for r in (await session.execute(select(THINGS).order_by("id"))).mappings()]
    for row in rows:
        row["stamp"] = row["stamp"].astimezone(UTC)
    assert got == rows
    assert got[1]["stamp"].tzinfo is UTC


async def test_insert_rows_raises_integrity_error_on_both_databases(db: Database) -> None:
    async with db.sessionmaker() as session:
        await insert_rows(session, THINGS, COLUMNS, things(3))
        with pytest.raises(IntegrityError):
            await insert_rows(session, THINGS, COLUMNS, things(2, start=2))
        await session.rollback()
        assert is_postgresql(session) == db.url.startswith("postgresql")


# --- the spooled body ---------------------------------------------------------


def spool_app(max_bytes: int) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/spool")
    async def spool(request: Request) -> dict[str, Any]:
        async with spooled_body(request, max_bytes) as upload:
            path = upload.path
            body = upload.path.read_bytes()
            container = upload.container
        return {"container": container, "body": body.decode(), "kept": path.exists()}

    return app


async def body_chunks(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_the_body_is_spooled_raw_or_from_its_file_part_then_deleted() -> None:
    transport = httpx.ASGITransport(app=spool_app(1000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        raw = await client.post(
            "/spool",
            content=body_chunks(b"a,b\n", b"1,2\n"),
            headers={"content-type": "text/csv"},
        )
        assert raw.status_code == 200, raw.text
        assert raw.json() == {"container": "csv", "body": "a,b\n1,2\n", "kept": False}
        part = await client.post(
            "/spool",
            data={"note": "x"},
            files={"file": ("r.bin", b'{"a": 1}\n', "application/octet-stream")},
        )
        assert part.json()["container"] == "ndjson"
        assert part.json()["body"] == '{"a": 1}\n'
        too_large = await client.post(
            "/spool",
            content=body_chunks(b"x" * 600, b"x" * 600),
            headers={"content-type": "text/csv"},
        )
        assert too_large.status_code == 413
        assert too_large.headers["content-type"] == "application/problem+json"
        no_file = await client.post("/spool", data={"note": "x"}, files={"other": ("a", b"1")})
        assert no_file.status_code == 422
        assert no_file.json()["errors"] == [{"field": "file", "reason": "no part named 'file'"}]
        unsupported = await client.post(
            "/spool", content=b"{}", headers={"content-type": "application/json"}
        )
        assert unsupported.status_code == 415


# --- a results file as the programme publishes them ---------------------------

RESULTS = Table(
    "results",
    METADATA,
    Column("result_code", String(32), primary_key=True),
    Column("site_code", String(32), nullable=False),
    Column("indicator", String(16), nullable=False),
    Column("value", Float),
    Column("updated_on", Date),
)
# The columns of the programme's "export-resultats" (/work/shared/data/README.md).
EXPORT_RESULTATS = (
    "code_sp_du_resultat;intitule_du_reseau;typologie;intitule_de_la_structure;"
    "code_sp_structure;titre_original_de_l_indicateur;code_sp_de_l_indicateur;valeur;"
    "date_de_mise_a_jour"
)


async def test_a_results_file_in_the_programmes_columns_goes_through_the_pipeline(
    db: Database, tmp_path: Path
) -> None:
    """What the indicators service will do with millions of rows: the kit reads,
    batches and writes; the service only maps a record to its columns."""
    path = tmp_path / "export-resultats.csv"
    lines = [
        EXPORT_RESULTATS,
        'R1;Caf;agence;"Caf de Laval; accueil";S1;Délai de réponse;IND-27;12,5;2023-05-02',
        "R2;Caf;agence;Caf de Laval;S1;Satisfaction;IND-3;;2023-05-02",
        "R3;Caf;agence;Caf de Laval;S1;Satisfaction;IND-3;beaucoup;2023-05-02",
    ]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    with ExitStack() as stack:
        source = open_source(path, path_container(path), stack)
        index = {name: i for i, name in enumerate(source.header)}
        report = ReportBuilder("export-resultats", dry_run=False)

        def to_row(line: int, cells: list[str]) -> dict[str, Any]:
            def cell(name: str) -> str:
                return cells[index[name]]

            raw = cell("valeur").replace(",", ".")
            try:
                value = float(raw) if raw else None
            except ValueError:
                raise RowError("valeur", "must be a number") from None
            return {
                "result_code": cell("code_sp_du_resultat"),
                "site_code": cell("code_sp_structure"),
                "indicator": cell("code_sp_de_l_indicateur"),
                "value": value,
                "updated_on": date.fromisoformat(cell("date_de_mise_a_jour")),
            }

        async with db.sessionmaker() as session:
            async for batch in mapped_batches(
                source.records,
                to_row,
                lambda line, exc: report.reject(line, exc.field, exc.reason),
                batch_size=2,
            ):
                report.rows += batch.records
                await insert_rows(session, RESULTS, list(RESULTS.c.keys()), batch.rows)
            await session.commit()
    assert (report.rows, report.rejected) == (3, 1)
    assert report.rejected_rows[0].line == 4
    async with db.read_sessionmaker() as session:
        got = (await session.execute(select(RESULTS).order_by("result_code"))).all()
    assert [(r.result_code, r.indicator, r.value) for r in got] == [
        ("R1", "IND-27", 12.5),
        ("R2", "IND-3", None),
    ]

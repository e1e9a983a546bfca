"""Streaming exports: CSV and JSON Lines, never built in memory, with their Table Schema.

A service describes one export by a pydantic model (the contract: one field
a column, with its type and description) and a SQLAlchemy ``Select`` whose
columns are labelled with the model's field names (its filters and order
included). This module then:

- streams it (:func:`stream_rows`): on PostgreSQL as the bytes of
  ``COPY (query) TO STDOUT``, columns shaped in SQL (PERFORMANCE.md: any
  per-row Python formatting caps an export at 12-15% of the database); on
  SQLite from a server-side cursor, a partition of rows at a time. Either way
  at most a few chunks are in memory, whatever the row count;
- answers it (:func:`export_response`): a weak ETag from the rows' count and
  latest change, Last-Modified, 304 for a matching If-None-Match (or
  If-Modified-Since);
- describes it (:func:`datapackage`): a Frictionless tabular data package,
  each field's type, format, description and ``required`` taken from the model.

Both databases write the same values: datetimes as UTC ISO 8601 with
microseconds and ``Z``, dates as ``YYYY-MM-DD``, booleans as ``true`` /
``false``, objects as JSON (text in a CSV cell).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Final

import orjson
from fastapi import Query
from pydantic import AfterValidator, BaseModel
from sqlalchemy import ColumnElement, Label, Select, String, case, cast, func, literal
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import Response, StreamingResponse

from spp_shared.kit.conditional import NOT_MODIFIED, VALIDATOR_HEADERS, ConditionalGet
from spp_shared.kit.db import Database, is_postgresql
from spp_shared.kit.errors import EarlyResponse
from spp_shared.kit.etags import http_date, matches


class ExportFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


MEDIA_TYPES: Final[Mapping[ExportFormat, str]] = {
    ExportFormat.csv: "text/csv; charset=utf-8",
    ExportFormat.jsonl: "application/x-ndjson",
}


def export_responses(
    *formats: ExportFormat, description: str = "The rows, streamed."
) -> dict[int | str, dict[str, Any]]:
    """What an export route declares in the OpenAPI besides the problems every
    route may answer: 200 in each of ``formats`` (all by default), and 304."""
    kinds = formats or tuple(ExportFormat)
    return {
        200: {
            "description": f"{description} ETag and Last-Modified give the export's version.",
            "headers": VALIDATOR_HEADERS,
            "content": {
                MEDIA_TYPES[f].split(";")[0]: {"schema": {"type": "string"}} for f in kinds
            },
        },
        **NOT_MODIFIED,
    }


# Rows a SQLite partition formats at once, and chunks a PostgreSQL COPY may
# have waiting for the client (asyncpg hands up to 256 KB at once): the export's
# memory, whatever its size.
PARTITION: Final = 500
QUEUED_CHUNKS: Final = 4
_DATETIME_PG: Final = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
_DATETIME_PY: Final = "%Y-%m-%dT%H:%M:%S.%fZ"


# --- the columns, from the contract -------------------------------------------


@dataclass(frozen=True)
class TableField:
    """One column as Table Schema describes it (frictionless specs, table-schema)."""

    name: str
    type: str  # string, integer, number, boolean, date, datetime, object, array
    description: str | None = None
    format: str | None = None  # email, uri (strings only)
    required: bool = False
    constraints: dict[str, Any] = field(default_factory=dict)

    def descriptor(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.format:
            out["format"] = self.format
        if self.description:
            out["description"] = self.description
        constraints = dict(self.constraints)
        if self.required:
            constraints["required"] = True
        if constraints:
            out["constraints"] = constraints
        return out


_JSON_TYPES: Final = {"string", "integer", "number", "boolean", "object", "array"}
_STRING_FORMATS: Final = {"date": "date", "date-time": "datetime"}
_KEPT_FORMATS: Final = {"email": "email", "uri": "uri"}


def _resolve(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    return defs[ref.rsplit("/", 1)[-1]] if isinstance(ref, str) else schema


def _table_field(name: str, schema: Mapping[str, Any], defs: Mapping[str, Any]) -> TableField:
    description = schema.get("description")
    variants = [_resolve(s, defs) for s in schema.get("anyOf", [schema])]
    nullable = any(v.get("type") == "null" for v in variants)
    typed = [v for v in variants if v.get("type") != "null"]
    if len(typed) != 1 or typed[0].get("type") not in _JSON_TYPES:
        raise TypeError(f"export field {name!r}: one JSON type expected, got {schema}")
    spec = typed[0]
    kind = spec["type"]
    fmt = str(spec.get("format", ""))
    constraints: dict[str, Any] = {}
    table_format = None
    if kind == "string":
        if fmt in _STRING_FORMATS:
            kind = _STRING_FORMATS[fmt]
        else:
            table_format = _KEPT_FORMATS.get(fmt)
            for key, out in (("maxLength", "maxLength"), ("pattern", "pattern")):
                if key in spec:
                    constraints[out] = spec[key]
    if "enum" in spec:
        constraints["enum"] = list(spec["enum"])
    return TableField(
        name=name,
        type=kind,
        description=description or spec.get("description"),
        format=table_format,
        required=not nullable,
        constraints=constraints,
    )


def table_fields(model: type[BaseModel]) -> tuple[TableField, ...]:
    """The model's fields as Table Schema fields, in the model's order.

    Read from pydantic's own JSON Schema of the model (serialization mode), so
    types, formats, enums, lengths and descriptions are the contract's. A
    field is ``required`` (never empty) unless its type admits ``None``.
    """
    schema = model.model_json_schema(mode="serialization")
    defs = schema.get("$defs", {})
    return tuple(_table_field(n, s, defs) for n, s in schema["properties"].items())


# --- the package descriptor ---------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """One export of a data package: its name, where to get it, its fields."""

    name: str
    path: str  # the URL of the CSV (a relative one resolves against the package's)
    fields: tuple[TableField, ...]
    title: str | None = None
    description: str | None = None
    primary_key: tuple[str, ...] = ()


LICENCE: Final = {
    "name": "etalab-2.0",
    "path": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
    "title": "Licence Ouverte / Open Licence 2.0",
}


def datapackage(
    name: str,
    resources: Iterable[Resource],
    *,
    title: str | None = None,
    description: str | None = None,
    licenses: Sequence[Mapping[str, str]] = (LICENCE,),
) -> dict[str, Any]:
    """A Frictionless *tabular data package* descriptor (``datapackage.json``)."""
    package: dict[str, Any] = {"profile": "tabular-data-package", "name": name}
    if title:
        package["title"] = title
    if description:
        package["description"] = description
    package["licenses"] = [dict(lic) for lic in licenses]
    package["resources"] = []
    for res in resources:
        schema: dict[str, Any] = {"fields": [f.descriptor() for f in res.fields]}
        if res.primary_key:
            schema["primaryKey"] = list(res.primary_key)
        entry: dict[str, Any] = {
            "profile": "tabular-data-resource",
            "name": res.name,
            "path": res.path,
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            "dialect": {"delimiter": ",", "doubleQuote": True, "header": True},
        }
        if res.title:
            entry["title"] = res.title
        if res.description:
            entry["description"] = res.description
        entry["schema"] = schema
        package["resources"].append(entry)
    return package


# --- streaming ----------------------------------------------------------------


# json_build_object takes at most 100 arguments, a name and a value a field.
MAX_FIELDS: Final = 50


def _check_columns(query: Select[Any], fields: Sequence[TableField]) -> None:
    names = [c.key for c in query.selected_columns]
    expected = [f.name for f in fields]
    if names != expected:
        raise ValueError(f"the export query's columns {names} are not its fields {expected}")
    if len(fields) > MAX_FIELDS:
        raise ValueError(f"an export has at most {MAX_FIELDS} fields, not {len(fields)}")


def _pg_shaped(query: Select[Any], fields: Sequence[TableField], fmt: ExportFormat) -> Select[Any]:
    """The query with each column as its export text (CSV) or JSON value (JSON Lines)."""
    shaped: list[ColumnElement[Any]] = []
    for column, f in zip(query.selected_columns, fields, strict=True):
        value: ColumnElement[Any] = column.element if isinstance(column, Label) else column
        if f.type == "datetime":
            value = func.to_char(func.timezone("UTC", value), _DATETIME_PG)
        elif f.type == "date":
            value = func.to_char(value, "YYYY-MM-DD")
        elif f.type == "boolean" and fmt is ExportFormat.csv:
            value = case((value.is_(True), "true"), (value.is_(False), "false"))
        elif f.type in ("object", "array") and fmt is ExportFormat.csv:
            value = cast(value, String)
        shaped.append(value.label(f.name))
    return query.with_only_columns(*shaped, maintain_column_froms=True)


def _pg_copy_sql(
    conn: AsyncConnection, query: Select[Any], fields: Sequence[TableField], fmt: ExportFormat
) -> tuple[str, list[Any], dict[str, Any]]:
    shaped = _pg_shaped(query, fields, fmt)
    if fmt is ExportFormat.jsonl:
        # One JSON object a row, built in the same SELECT (its ORDER BY holds)
        # and written raw: CSV format with a quote and a delimiter that JSON
        # text never holds unescaped (it escapes every control character), so
        # COPY neither quotes nor escapes it (the text format would double
        # every backslash).
        pairs: list[Any] = []
        for column in shaped.selected_columns:
            pairs += [literal(column.key), column]
        obj = func.json_build_object(*pairs).label("j")
        shaped = shaped.with_only_columns(obj, maintain_column_froms=True)
        options: dict[str, Any] = {"format": "csv", "quote": "\x01", "delimiter": "\x02"}
    else:
        options = {"format": "csv", "header": True}
    compiled = shaped.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    args = [params[name] for name in compiled.positiontup or ()]
    return str(compiled), args, options


async def _pg_stream(
    conn: AsyncConnection, query: Select[Any], fields: Sequence[TableField], fmt: ExportFormat
) -> AsyncGenerator[bytes, None]:
    sql, args, options = _pg_copy_sql(conn, query, fields, fmt)
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    # COPY hands each chunk to a coroutine; the queue passes it to the client
    # and, when full, holds COPY (and so the socket, and so PostgreSQL) back.
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUED_CHUNKS)

    async def put(data: bytes | bytearray) -> None:
        await queue.put(bytes(data))  # asyncpg hands a bytearray

    async def copy() -> None:
        await driver.copy_from_query(sql, *args, output=put, **options)
        await queue.put(None)

    task = asyncio.ensure_future(copy())
    finished = False
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                task.result()  # COPY failed: its error, here
            chunk = await getter
            if chunk is None:
                break
            yield chunk
        await task
        finished = True
    finally:
        if not finished:
            # The client left mid-export: stop COPY and drop the connection,
            # whose protocol state no longer matters.
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            await conn.invalidate()


def _text(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "datetime":
        return value.astimezone(UTC).strftime(_DATETIME_PY)
    if kind == "date":
        return value.isoformat() if isinstance(value, date) else value
    if kind == "boolean":
        return "true" if value else "false"
    if kind in ("object", "array"):
        return orjson.dumps(value).decode()
    return value


def _json(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "datetime":
        return value.astimezone(UTC).strftime(_DATETIME_PY)
    if kind == "boolean":
        return bool(value)
    return value


def _formatter(fields: Sequence[TableField], fmt: ExportFormat) -> Callable[[Sequence[Any]], bytes]:
    names = [f.name for f in fields]
    kinds = [f.type for f in fields]
    if fmt is ExportFormat.jsonl:

        def jsonl(rows: Sequence[Any]) -> bytes:
            # Each line is appended as soon as it is made: orjson's output
            # buffers are large, a list of them was megabytes a partition.
            out = bytearray()
            for row in rows:
                out += orjson.dumps(
                    {n: _json(v, k) for n, v, k in zip(names, row, kinds, strict=True)},
                    option=orjson.OPT_APPEND_NEWLINE,
                )
            return bytes(out)

        return jsonl

    def csv_rows(rows: Sequence[Any]) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows([_text(v, k) for v, k in zip(row, kinds, strict=True)] for row in rows)
        return buffer.getvalue().encode()

    return csv_rows


def _csv_header(fields: Sequence[TableField]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([f.name for f in fields])
    return buffer.getvalue().encode()


async def _cursor_stream(
    conn: AsyncConnection, query: Select[Any], fields: Sequence[TableField], fmt: ExportFormat
) -> AsyncGenerator[bytes, None]:
    formatter = _formatter(fields, fmt)
    if fmt is ExportFormat.csv:
        yield _csv_header(fields)
    result = await conn.stream(query.execution_options(yield_per=PARTITION))
    try:
        async for rows in result.partitions(PARTITION):
            yield formatter(rows)
    finally:
        await result.close()


async def stream_rows(
    db: Database, query: Select[Any], fields: Sequence[TableField], fmt: ExportFormat
) -> AsyncIterator[bytes]:
    """The rows of ``query`` as ``fmt``, a chunk at a time.

    Runs on a connection of its own from the read pool (a streamed answer
    outlives the request's session), for as long as the client reads.
    """
    _check_columns(query, fields)
    async with db.read_engine.connect() as conn:
        chunks = (
            _pg_stream(conn, query, fields, fmt)
            if is_postgresql(conn)
            else _cursor_stream(conn, query, fields, fmt)
        )
        # Closed here, before the connection goes back to the pool: a client
        # that leaves mid-export must not hand the pool a connection mid-COPY.
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                yield chunk


# --- the answer ---------------------------------------------------------------


def export_etag(*parts: object) -> str:
    """A weak tag of an export's state (e.g. filters, count, latest change):
    equal bytes are not promised, only the same rows."""
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:24]
    return f'W/"{digest}"'


@dataclass(frozen=True)
class ExportPlan:
    """One export about to be answered: its rows, their fields and their version."""

    query: Select[Any]
    fields: tuple[TableField, ...]
    etag: str
    last_modified: datetime | None
    filename: str  # without its extension


def export_response(
    db: Database, plan: ExportPlan, fmt: ExportFormat, conditional: ConditionalGet
) -> Response:
    """304 when the client has this version already (an :class:`EarlyResponse`),
    else the streamed export with its validators."""
    headers = {"ETag": plan.etag, "Cache-Control": "no-cache"}
    if plan.last_modified is not None:
        conditional.check(plan.etag, plan.last_modified)
        headers["Last-Modified"] = http_date(plan.last_modified)
    elif matches(conditional.if_none_match, plan.etag):  # an empty export has no date
        raise EarlyResponse(Response(status_code=304, headers=headers))
    headers["Content-Disposition"] = f'attachment; filename="{plan.filename}.{fmt.value}"'
    return StreamingResponse(
        stream_rows(db, plan.query, plan.fields, fmt), media_type=MEDIA_TYPES[fmt], headers=headers
    )


def _utc(moment: datetime | None) -> datetime | None:
    # A time without an offset is read as UTC, as every time of the API is.
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


Since = Annotated[
    datetime | None,
    AfterValidator(_utc),
    Query(
        description="Only the rows changed at or after this time (ISO 8601, UTC if no "
        "offset): pass the latest `updated_at` you hold to pull what changed since."
    ),
]

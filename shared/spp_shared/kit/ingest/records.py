"""Records of a spooled file, each bounded while it is read, before it is parsed.

CSV (``,`` or ``;``, BOM or not) gives ``(line, cells)`` after a cleaned
header row; NDJSON gives ``(line, object)``. A line that is not a JSON object
comes out as ``(line, RowError)``, for the caller's report. A file that
cannot be read at all (not UTF-8, a record over the limits, malformed
quoting) raises :class:`FileProblem`, naming the line where it starts.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import IO, Any, Final

import orjson

from spp_shared.kit.errors import ValidationProblem
from spp_shared.kit.ingest.formats import Container, clean_header, sniff_delimiter

# Real exports' longest field is a few hundred characters: a field this long
# is a stray quote swallowing the rest of the file, refused before it fills memory.
FIELD_SIZE_LIMIT: Final = 1024 * 1024
csv.field_size_limit(FIELD_SIZE_LIMIT)
# One record (an NDJSON line in bytes, a CSV record's physical lines in
# characters), bounded while it is read and before it is parsed: the longest
# line of the SP+ structures export is 593 bytes, of the France services list
# 962; a row of any table is a few KB. A 60 MB line took the process to 2 GB
# (issue 7, security review).
MAX_RECORD_SIZE: Final = 1024 * 1024
# The widest known layout (the SP+ export) has 26 columns; a record with more
# fields than this is refused before csv splits it (a 1 MiB line of commas is
# a million fields).
MAX_COLUMNS: Final = 200
# Commas in one NDJSON line: they bound the values its parse allocates (a
# 1 MiB line of ``[],`` is half a million lists). A row has a few dozen values.
MAX_NDJSON_COMMAS: Final = 10_000


class RowError(Exception):
    """A row cannot be imported: ``field`` (API name) and a reason."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


class FileProblem(ValidationProblem):
    type_ = "invalid-import-file"
    title = "The file cannot be imported"


Record = tuple[int, Any]


@dataclass
class Source:
    """An opened file: its container, header (CSV) and ``(line, record)`` iterator."""

    container: Container
    records: Iterator[Record]
    header: list[str] = field(default_factory=list)


def open_text(path: Path) -> IO[str]:
    return path.open(encoding="utf-8-sig", newline="")


def open_source(path: Path, container: Container, stack: ExitStack) -> Source:
    """Open ``path`` in ``stack`` and read its header (CSV); the records follow lazily."""
    if container is Container.ndjson:
        binary: IO[bytes] = stack.enter_context(path.open("rb"))
        return Source(Container.ndjson, ndjson_records(binary))
    stream = stack.enter_context(open_text(path))
    header, records = csv_records(CsvLines(stream, lambda: not_utf8(path)))
    return Source(Container.csv, records, header)


def _first_non_utf8(path: Path) -> tuple[int, int]:
    """The line and value of the first byte that is not UTF-8, from the raw file.

    The text reader decodes blocks of 8 KB, so its error tells neither the line
    nor the byte's place in the file; only this error path reads the file again,
    a bounded piece of a line at a time (the incremental decoder joins a
    character cut between two pieces).
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    number = 1
    with path.open("rb") as raw:
        while piece := raw.readline(MAX_RECORD_SIZE):
            try:
                decoder.decode(piece)
            except UnicodeDecodeError as exc:
                return number, exc.object[exc.start]
            number += piece.endswith(b"\n")
    return 0, 0


def not_utf8(path: Path) -> FileProblem:
    line, byte = _first_non_utf8(path)
    return FileProblem(
        f"The file is not UTF-8 text: line {line} has the byte 0x{byte:02X}, which is "
        "not UTF-8 (a Latin-1 or Windows-1252 file?). Re-save the file as UTF-8 "
        "(in a spreadsheet: 'CSV UTF-8') and send it again.",
        errors=[{"line": line, "reason": f"byte 0x{byte:02X} is not UTF-8"}],
    )


def record_too_large(line: int, what: str, limit: str, hint: str | None = None) -> FileProblem:
    hint = hint or "no row needs that much. Is it the right file (a stray quote, a binary file)?"
    return FileProblem(
        f"The record starting at line {line} {what}, over the limit of {limit}: {hint}",
        errors=[{"line": line, "reason": f"{what}, over the limit of {limit}"}],
    )


def _outside_quotes(text: str, delimiter: str, quoted: bool) -> tuple[int, bool]:
    """Delimiters of ``text`` outside double quotes, and whether it ends inside quotes."""
    parts = text.split('"')
    return sum(p.count(delimiter) for p in parts[quoted::2]), quoted ^ (len(parts) % 2 == 0)


class CsvLines:
    """The physical lines of a CSV file, each record bounded before csv parses it.

    A line is read with a limit (what is left of :data:`MAX_RECORD_SIZE` for
    its record), so no line longer than that is ever in memory; a record's
    fields are counted as delimiters outside quotes (exactly, but only once
    the plain count of delimiters reaches :data:`MAX_COLUMNS`). csv.reader
    asks for the lines of one record at a time: :meth:`next_record` starts the
    count again. ``on_decode_error`` turns a UnicodeDecodeError into the
    caller's problem.
    """

    def __init__(self, stream: IO[str], on_decode_error: Callable[[], Exception]) -> None:
        self._readline = stream.readline
        self._on_decode_error = on_decode_error
        self.delimiter = ","
        self.line = 0  # physical lines read
        self.next_record()

    def next_record(self) -> None:
        self._start = self.line + 1
        self._size = 0
        self._lines: list[str] = []
        self._delimiters = 0
        self._exact = False  # _delimiters counts those outside quotes only
        self._quoted = False

    def __iter__(self) -> CsvLines:
        return self

    def __next__(self) -> str:
        try:
            line = self._readline(MAX_RECORD_SIZE + 1 - self._size)
        except UnicodeDecodeError:
            raise self._on_decode_error() from None
        if not line:
            raise StopIteration
        self.line += 1
        self._size += len(line)
        if self._size > MAX_RECORD_SIZE:
            raise record_too_large(self._start, "is longer", f"{MAX_RECORD_SIZE} characters")
        if self.line == 1:
            self.delimiter = sniff_delimiter(line)
        if self._exact:
            n, self._quoted = _outside_quotes(line, self.delimiter, self._quoted)
            self._delimiters += n
        else:
            self._lines.append(line)
            self._delimiters += line.count(self.delimiter)
            if self._delimiters >= MAX_COLUMNS:  # rare: count those outside quotes
                text, self._lines = "".join(self._lines), []
                self._delimiters, self._quoted = _outside_quotes(text, self.delimiter, False)
                self._exact = True
        if self._delimiters >= MAX_COLUMNS:
            raise record_too_large(
                self._start,
                "has more fields",
                f"{MAX_COLUMNS} fields (the widest layout)",
                f"no known layout has more than {MAX_COLUMNS} columns. "
                f"Is the delimiter right (',' or ';')?",
            )
        return line


def csv_records(lines: CsvLines) -> tuple[list[str], Iterator[Record]]:
    """The cleaned header and ``(line, cells)`` of each data record.

    ``line`` is the physical line where the record starts (header = 1), so
    records with line breaks inside quotes still point at the right place.
    """
    first = next(lines, "")
    if not first.strip():
        raise FileProblem("The file is empty: a header row is expected.")
    # strict: a quote that is never closed, or text after a closing quote, is
    # an error rather than a field swallowing the lines that follow.
    reader = csv.reader(chain([first], lines), delimiter=lines.delimiter, strict=True)
    try:
        header = [clean_header(h) for h in next(reader)]
    except csv.Error as exc:
        raise _malformed(1, exc) from None
    lines.next_record()

    def records() -> Iterator[Record]:
        previous = reader.line_num
        try:
            for cells in reader:
                lines.next_record()
                start, previous = previous + 1, reader.line_num
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue
                yield start, cells
        except csv.Error as exc:
            raise _malformed(previous + 1, exc) from None

    return header, records()


def _malformed(start: int, exc: csv.Error) -> FileProblem:
    return FileProblem(
        f"The CSV is malformed in the record starting at line {start} ({exc}): "
        "look for a double quote that is not closed, or one inside an unquoted value.",
        errors=[{"line": start, "reason": str(exc)}],
    )


def ndjson_records(stream: IO[bytes]) -> Iterator[Record]:
    """``(line, object)``, or ``(line, RowError)`` for a line that is not a JSON object."""
    number = 0
    while raw := stream.readline(MAX_RECORD_SIZE + 1):
        number += 1
        if len(raw) > MAX_RECORD_SIZE:
            raise record_too_large(number, "is longer", f"{MAX_RECORD_SIZE} bytes")
        if raw.count(b",") > MAX_NDJSON_COMMAS:
            raise record_too_large(number, "has more commas", f"{MAX_NDJSON_COMMAS}")
        line = raw.strip()
        if number == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")
        if not line:
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield number, RowError(None, f"invalid JSON: {exc}")
            continue
        if not isinstance(record, dict):
            yield number, RowError(None, "each line must be a JSON object")
            continue
        yield number, record

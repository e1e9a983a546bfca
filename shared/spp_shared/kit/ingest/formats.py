"""How a bulk body carries its file (media type, multipart part), and the CSV header row."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from spp_shared.kit.errors import UnsupportedMediaType


class Container(StrEnum):
    """How the body carries the file."""

    csv = "csv"
    ndjson = "ndjson"
    multipart = "multipart"


CSV_TYPES = frozenset({"text/csv", "application/csv", "text/comma-separated-values"})
NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
SUPPORTED = "text/csv, application/x-ndjson (or application/jsonl), multipart/form-data"
NDJSON_SUFFIXES = (".ndjson", ".jsonl")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def container_of(content_type: str | None) -> Container:
    """The container announced by Content-Type; 415 for anything else."""
    kind = media_type(content_type)
    if kind in CSV_TYPES:
        return Container.csv
    if kind in NDJSON_TYPES:
        return Container.ndjson
    if kind == "multipart/form-data":
        return Container.multipart
    raise UnsupportedMediaType(f"Send the file as {SUPPORTED}; got '{kind or 'no Content-Type'}'.")


def part_container(content_type: str | None, filename: str | None, head: bytes) -> Container:
    """The format of a multipart file part: its type, its name, else its first byte."""
    kind = media_type(content_type)
    if kind in CSV_TYPES:
        return Container.csv
    if kind in NDJSON_TYPES:
        return Container.ndjson
    name = (filename or "").lower()
    if name.endswith(NDJSON_SUFFIXES):
        return Container.ndjson
    if name.endswith((".csv", ".txt")):
        return Container.csv
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return Container.ndjson if first == b"{" else Container.csv


def path_container(path: Path) -> Container:
    """A file on disk (scripts, seeding): NDJSON by its suffix, else CSV."""
    return Container.ndjson if path.suffix.lower() in NDJSON_SUFFIXES else Container.csv


def clean_header(name: str) -> str:
    """A header cell without BOM, quotes and outer spaces (a BOM may sit inside quotes)."""
    return name.replace("\ufeff", "").strip().strip('"').strip()


def sniff_delimiter(header_line: str) -> str:
    return ";" if header_line.count(";") > header_line.count(",") else ","

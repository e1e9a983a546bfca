"""Which format a file is: from its media type, then from its header row."""

from __future__ import annotations

from enum import StrEnum

from spp_shared.kit.errors import UnsupportedMediaType


class Format(StrEnum):
    csv = "csv"  # our own flat columns
    ndjson = "ndjson"  # the same flat keys, one JSON object a line
    sp_plus_export = "sp-plus-export"  # the programme's structures export
    france_services = "france-services"  # ANCT's list of France services


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

SP_PLUS_MARKER = "code sp+ de la structure"
FRANCE_SERVICES_MARKER = "id_fs"


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
    if name.endswith((".ndjson", ".jsonl")):
        return Container.ndjson
    if name.endswith((".csv", ".txt")):
        return Container.csv
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return Container.ndjson if first == b"{" else Container.csv


def clean_header(name: str) -> str:
    """A header cell without BOM, quotes and outer spaces (the export's BOM is inside quotes)."""
    return name.replace("\ufeff", "").strip().strip('"').strip()


def sniff_delimiter(header_line: str) -> str:
    return ";" if header_line.count(";") > header_line.count(",") else ","


def csv_format(header: list[str]) -> Format:
    lowered = {h.lower() for h in header}
    if SP_PLUS_MARKER in lowered:
        return Format.sp_plus_export
    if FRANCE_SERVICES_MARKER in lowered:
        return Format.france_services
    return Format.csv

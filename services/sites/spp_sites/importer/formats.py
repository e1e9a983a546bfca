"""Which sites format a CSV file is, from its header row (the kit tells CSV from NDJSON)."""

from __future__ import annotations

from enum import StrEnum


class Format(StrEnum):
    csv = "csv"  # our own flat columns
    ndjson = "ndjson"  # the same flat keys, one JSON object a line
    sp_plus_export = "sp-plus-export"  # the programme's structures export
    france_services = "france-services"  # ANCT's list of France services


SP_PLUS_MARKER = "code sp+ de la structure"
FRANCE_SERVICES_MARKER = "id_fs"


def csv_format(header: list[str]) -> Format:
    lowered = {h.lower() for h in header}
    if SP_PLUS_MARKER in lowered:
        return Format.sp_plus_export
    if FRANCE_SERVICES_MARKER in lowered:
        return Format.france_services
    return Format.csv

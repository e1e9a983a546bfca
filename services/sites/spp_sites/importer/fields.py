"""Cheap checks of single values, shared by the row mappers.

Plain functions (no pydantic per row): each returns the canonical value or
raises :class:`RowError` naming the field, so a rejected row says what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from functools import lru_cache
from typing import Any, Final

from spp_shared.contracts.sites import SP_CODE_PATTERN, ResultsLevel, SiteStatus
from spp_shared.contracts.types import (
    WEEKDAYS,
    check_coordinates,
    check_single_line,
    check_visible_code,
    check_visible_name,
    parse_day_hours,
)
from spp_shared.kit.ingest import RowError
from spp_sites.models import Site

MAX_LENGTHS: Final[Mapping[str, int]] = {
    c.name: c.type.length  # type: ignore[attr-defined]
    for c in Site.__table__.columns
    if getattr(c.type, "length", None)
}
# API field names of the columns whose name differs.
FIELD_NAMES: Final[Mapping[str, str]] = {"network_code": "network"}

CODE_RE: Final = re.compile(SP_CODE_PATTERN)
LEVELS: Final = frozenset(level.value for level in ResultsLevel)
STATUSES: Final = frozenset(status.value for status in SiteStatus)
FRANCE: Final = "France"

# Control characters: PostgreSQL refuses NUL in text, and a line break in a
# single-line value breaks every CSV export downstream. Tabs become spaces.
CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_NOT_IN_CODE_RE: Final = re.compile(r"[\s\x00-\x1f\x7f]")


def api_field(column: str) -> str:
    return FIELD_NAMES.get(column, column)


def text(value: Any, column: str, *, checked_later: bool = False) -> str | None:
    """Stripped text, ``None`` when empty; too long is an error (unless normalised later)."""
    if value is None:
        return None
    if type(value) is str:  # CSV cells always, NDJSON mostly: the fast way first
        s = value.strip()
    elif isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RowError(api_field(column), "must be a string")
    else:
        s = str(value).strip()
    if not s:
        return None
    if not s.isprintable():  # cheap test first: most values are plain text
        s = s.replace("\t", " ")
        if bad := CONTROL_RE.search(s):
            raise RowError(api_field(column), control_reason(bad.group()))
        single_line(s, column)
    limit = MAX_LENGTHS.get(column)
    if not checked_later and limit is not None and len(s) > limit:
        raise RowError(api_field(column), f"longer than {limit} characters")
    return s


def control_reason(char: str) -> str:
    what = "a line break" if char in "\r\n" else "a control character"
    return f"contains {what} (U+{ord(char):04X}): not allowed in this field"


def checked(column: str, fn: Callable[[str], Any], value: str) -> Any:
    try:
        return fn(value)
    except ValueError as exc:
        raise RowError(api_field(column), str(exc)) from None


def single_line(value: str, column: str) -> None:
    """The contracts' rule for single-line text (no bidirectional control or
    line separator); those characters are non-printable, so callers test
    ``isprintable()`` first."""
    checked(column, check_single_line, value)


def visible_name(value: str | None) -> None:
    """Refuse a site's name with a bidirectional control, separator or invisible character."""
    if value is not None:
        checked("name", check_visible_name, value)


def sp_code(value: str, column: str) -> str:
    if not CODE_RE.fullmatch(value):
        raise RowError(api_field(column), "SP+ code must be 1-32 letters, digits or inner dashes")
    return value


def external_code(value: str) -> str:
    """The key of a site in its network: one word, no longer than its column."""
    if _NOT_IN_CODE_RE.search(value):
        raise RowError("external_code", "must not contain spaces or control characters")
    checked("external_code", check_visible_code, value)
    limit = MAX_LENGTHS["external_code"]
    if len(value) > limit:
        raise RowError("external_code", f"longer than {limit} characters")
    return value


def level(value: str) -> str:
    if value not in LEVELS:
        raise RowError("level", f"must be one of {', '.join(sorted(LEVELS))}")
    return value


def status(value: str) -> str:
    if value not in STATUSES:
        raise RowError("status", f"must be one of {', '.join(sorted(STATUSES))}")
    return value


def iso_date(value: str, column: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RowError(api_field(column), "must be a date YYYY-MM-DD") from None


def number(value: Any, column: str) -> float:
    if isinstance(value, bool):
        raise RowError(column, "must be a number")
    try:
        return float(str(value).replace(",", ".")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise RowError(column, "must be a number") from None


def coordinates(lat: Any, lon: Any, *, in_france: bool) -> tuple[float | None, float | None]:
    if lat in (None, "") and lon in (None, ""):
        return None, None
    if lat in (None, "") or lon in (None, ""):
        raise RowError("latitude" if lat in (None, "") else "longitude", "give both or neither")
    lat_f, lon_f = number(lat, "latitude"), number(lon, "longitude")
    if in_france:
        try:
            return check_coordinates(lat_f, lon_f)
        except ValueError as exc:
            raise RowError("latitude", str(exc)) from None
    if not (-90 <= lat_f <= 90 and -180 <= lon_f <= 180):
        raise RowError("latitude", "latitude must be within ±90 and longitude within ±180")
    return lat_f, lon_f


def day_hours(texts: Mapping[str, str | None]) -> dict[str, Any] | None:
    """Opening hours (API shape) from one text per weekday (English keys).

    Days not given stay unknown; all given days empty means unknown too.
    """
    days: dict[str, Any] = {}
    any_text = False
    for day in WEEKDAYS:
        if day not in texts:
            continue
        raw = texts[day]
        s = (raw or "").strip()
        any_text = any_text or bool(s)
        try:
            days[day] = _day_ranges(s)
        except ValueError as exc:
            raise RowError(day, str(exc)) from None
    return days if any_text else None


@lru_cache(maxsize=4096)
def _day_ranges(text: str) -> list[dict[str, str]]:
    # A few dozen distinct schedules cover a whole registry; the result is
    # shared between rows and only ever serialised, never changed.
    return [{"opens": o, "closes": c} for o, c in parse_day_hours(text)]

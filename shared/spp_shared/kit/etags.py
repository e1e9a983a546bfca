"""Entity tags and conditional requests (RFC 9110 §8.8.3, §13.1).

A tag names the resource and its version (``"<key>.<version>"``), not the
version alone: when ``caf:X1`` comes to mean another site, an If-Match
obtained from the old one must not apply to the new one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from spp_shared.kit.errors import BadRequest, PreconditionFailed, PreconditionRequired


def make_etag(key: str, version: int) -> str:
    return f'"{key}.{version}"'


# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc being
# any visible character but DQUOTE (a comma included), or obs-text. A list
# element may be empty and surrounded by spaces or tabs (§5.6.1).
_ELEMENT = re.compile(r'[ \t]*(\*|(?:W/)?"[\x21\x23-\x7e\x80-\xff]*")?[ \t]*(?:,|\Z)')


def entity_tags(header: str) -> list[str] | None:
    """The items of an If-Match / If-None-Match value (``*`` or tags, ``W/``
    kept), or None when it is not that syntax (``W/*``, a bare word...)."""
    items: list[str] = []
    pos = 0
    while pos < len(header):
        found = _ELEMENT.match(header, pos)
        if found is None:
            return None
        if found.group(1):
            items.append(found.group(1))
        pos = found.end()
    return items


def _tags(header: str) -> set[str]:
    return {t.strip().removeprefix("W/") for t in header.split(",") if t.strip()}


def matches(header: str | None, tag: str) -> bool:
    """Whether an If-None-Match value names ``tag`` (or ``*``), by the weak
    comparison (RFC 9110 §13.1.2: ``W/"x"`` matches ``"x"``)."""
    if not header:
        return False
    tags = _tags(header)
    return "*" in tags or tag.removeprefix("W/") in tags


def check_if_match(if_match: str | None, tag: str, *, required: bool = True) -> None:
    """Refuse a write made against a version the client has not seen.

    ``if_match`` is every If-Match field line joined with ", " (RFC 9110
    §5.3: repeated lines are one list; :data:`spp_shared.kit.params.IfMatch`
    joins them). The comparison is strong (§13.1.1): a weak tag never
    matches, whatever it names.
    """
    if if_match is None:
        if required:
            raise PreconditionRequired(
                "Send If-Match with the ETag you last read, so concurrent edits are not lost."
            )
        return
    items = entity_tags(if_match)
    if items is None:
        raise BadRequest(
            'If-Match is * or a list of ETags ("..." or W/"..."); what was sent is neither.'
        )
    if "*" in items and len(items) > 1:
        # RFC 9110 §13.1.1: "*" or a list of tags, never both; a "*" slipped
        # into a list would skip the check the tags ask for.
        raise BadRequest(
            "If-Match is either * alone or a list of ETags, not both: "
            f"got {len(items)} items including *."
        )
    if items != ["*"] and tag not in items:
        raise PreconditionFailed(f"The resource changed since you read it (current ETag {tag}).")


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def not_modified(
    if_none_match: str | None, if_modified_since: str | None, tag: str, last_modified: datetime
) -> bool:
    """RFC 9110 §13.2.2: If-None-Match decides when sent; else If-Modified-Since."""
    if if_none_match:
        return matches(if_none_match, tag)
    if not if_modified_since:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, OverflowError):
        return False  # an invalid date is ignored, as the RFC says
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return last_modified.replace(microsecond=0) <= since


def validators(tag: str, last_modified: datetime) -> dict[str, str]:
    """The headers a conditional GET answers with (200 and 304 alike)."""
    return {"ETag": tag, "Last-Modified": http_date(last_modified)}

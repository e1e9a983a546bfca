"""Route groups: which family of limits (rate, body size) applies to a request.

The group follows from the method and the route key alone (the same first
two path segments the router looks up), so classifying costs one
``route_key``, two set lookups and a suffix test: it runs on every request.
The annotated types at the end check the limits' settings when they are read.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from limits import parse_many
from pydantic import AfterValidator, BeforeValidator
from pydantic_settings import NoDecode

from spp_gateway.routes import LOCAL_ROUTES, is_bulk, route_key


class RouteGroup(StrEnum):
    read = "read"
    write = "write"
    submission = "submission"
    bulk = "bulk"
    admin = "admin"
    # Rate budget only (see rate_group): bulk reads, whose bodies are sized
    # like any read or write.
    lookup = "lookup"


# Public, anonymous-friendly forms: the resources a bot would flood, hence
# their stricter limits.
SUBMISSION_RESOURCES = frozenset({"/v1/experiences", "/v1/ratings", "/v1/document-reports"})
# Credentials and the audit trail: one group whatever the method, so reading
# the audit log is throttled like changing an API key.
ADMIN_RESOURCES = frozenset(LOCAL_ROUTES)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SUBMIT_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Bulk reads: a look-up of up to 10,000 keys, the sites near a point
# (thousands of candidates ranked), or a whole export (``/<resource>/export``
# and what lies under it), each worth hundreds of plain reads. A conditional
# export answered 304 spends the same budget: polling is cheap, not free.
LOOKUP_SUFFIX = "/lookup"
EXPORT_SEGMENT = "/export"
_NEAR = "near"


def classify(method: str, path: str) -> RouteGroup:
    """The group of ``method path``: admin, then bulk, then read, submission, write."""
    key = route_key(path)
    if key in ADMIN_RESOURCES:
        return RouteGroup.admin
    # Same test as the proxy's bulk timeout, so "bulk" means one thing.
    if is_bulk(method, path):
        return RouteGroup.bulk
    if method in READ_METHODS:
        return RouteGroup.read
    if key in SUBMISSION_RESOURCES and method in _SUBMIT_METHODS:
        return RouteGroup.submission
    return RouteGroup.write


def is_change(method: str, path: str) -> bool:
    """Whether a request may change something (what the audit log records):
    neither a read nor a look-up, which is a read with its keys in the body."""
    return method not in READ_METHODS and not _is_lookup(method, path)


def rate_group(method: str, path: str, query: bytes) -> RouteGroup:
    """The group whose rate budget a request spends: :func:`classify`'s, except
    for bulk reads (``POST .../lookup``, ``GET`` or ``HEAD`` with a ``near``
    parameter), which get the ``lookup`` budget of their own."""
    group = classify(method, path)
    if (
        group is RouteGroup.read
        and method in ("GET", "HEAD")
        and (_is_export(path) or _has_near(query))
    ):
        return RouteGroup.lookup
    if group is RouteGroup.write and _is_lookup(method, path):
        return RouteGroup.lookup
    return group


def _is_export(path: str) -> bool:
    rest = path[len(route_key(path)) :]
    return rest == EXPORT_SEGMENT or rest.startswith(EXPORT_SEGMENT + "/")


def _is_lookup(method: str, path: str) -> bool:
    return method == "POST" and path.endswith(LOOKUP_SUFFIX)


def _has_near(query: bytes) -> bool:
    # Fast path for the many queries that cannot name it; otherwise decoded
    # like the services decode it ("ne%61r=" and "near" are the same name).
    if not query or (b"near" not in query.lower() and b"%" not in query):
        return False
    return any(
        name == _NEAR for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    )


# --- setting types, checked when the settings are read (a typo fails at startup)


def _check_rate_limits(value: str) -> str:
    try:
        parse_many(value)
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not a rate limit; write e.g. '60/minute' or '10/minute;20/hour'"
        ) from exc
    return value


REDIS_SCHEMES = frozenset({"redis", "rediss", "redis+unix", "redis+cluster", "redis+sentinel"})


def _check_redis_url(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    scheme = value.partition("://")[0].lower().removeprefix("async+")
    if scheme not in REDIS_SCHEMES or "://" not in value:
        raise ValueError(
            f"the Redis URL must start with one of {', '.join(sorted(REDIS_SCHEMES))}://"
        )
    return value.strip()


def _split_origins(value: Any) -> Any:
    # Accept "https://a.gouv.fr, https://b.gouv.fr" as well as a JSON list:
    # the comma form is what operators write in an env file.
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return orjson.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _check_origins(origins: list[str]) -> list[str]:
    out: list[str] = []
    for origin in origins:
        # Starlette compares the Origin header as an exact string, and browsers
        # send it lower-cased, without a path or a trailing slash.
        parts = urlsplit(origin.strip().removesuffix("/"))
        try:
            parts.port  # noqa: B018 - raises on a port out of range or not a number
            valid_port = True
        except ValueError:
            valid_port = False
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            # "https://*.gouv.fr" would be compared as that very string: it
            # allows no browser at all, whatever its author believed.
            or "*" in parts.netloc
            or not valid_port
            or parts.username is not None
            or parts.path
            or parts.query
            or parts.fragment
        ):
            raise ValueError(
                f"{origin!r} is not an exact origin such as https://usagers.gouv.fr "
                "(no wildcard, no path)"
            )
        out.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return out


RateLimitText = Annotated[str, AfterValidator(_check_rate_limits)]
RedisURL = Annotated[str | None, AfterValidator(_check_redis_url)]
OriginList = Annotated[
    list[str], NoDecode, BeforeValidator(_split_origins), AfterValidator(_check_origins)
]

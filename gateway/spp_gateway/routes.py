"""Which upstream service answers which public path: the one routing table.

A route is the first two path segments (``/v1/sites``); the gateway looks
the prefix of each request up in a dict built once at startup, so routing
costs one ``str.find`` and one hash lookup whatever the table's size. Add a
new resource here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

API_PREFIX = "/v1"

# service name -> the /v1 resources it owns. Each service also answers
# /v1/<its name>/jobs (its outbox, for admins): sites and indicators through
# the resource of that name, feedback and labelling through their own.
ROUTES: Mapping[str, tuple[str, ...]] = {
    "sites": ("/v1/networks", "/v1/sites"),
    "feedback": (
        "/v1/feedback",
        "/v1/experiences",
        "/v1/ratings",
        "/v1/document-reports",
        "/v1/action-plans",
    ),
    "indicators": (
        "/v1/indicators",
        "/v1/commitments",
        "/v1/results",
        "/v1/ingestion-batches",
        "/v1/exports",
    ),
    "labelling": ("/v1/labelling", "/v1/referentiels", "/v1/label-applications", "/v1/labels"),
}

SERVICES: tuple[str, ...] = tuple(ROUTES)

# The gateway's own resources, served in-process behind the same
# authentication, limits and metrics as the proxied ones.
LOCAL = "gateway"
LOCAL_ROUTES: tuple[str, ...] = ("/v1/api-keys", "/v1/agent-mappings", "/v1/audit-events")

# Bulk endpoints answer only when all the work is done (an import of 100k
# rows takes tens of seconds), so they get the longer bulk read timeout, the
# large body limit and a streamed body. Exactly ``POST /v1/<resource>/import``:
# a suffix test alone let ``PATCH /v1/sites/import`` (a site whose reference
# is "import") stream 512 MiB into an ordinary JSON endpoint.
BULK_SUFFIX = "/import"


def is_bulk(method: str, path: str) -> bool:
    return (
        method == "POST"
        and path.endswith(BULK_SUFFIX)
        and route_key(path) == path[: -len(BULK_SUFFIX)]
    )


@dataclass(frozen=True, slots=True)
class Upstream:
    """One upstream service: its name and base URL (no trailing slash)."""

    name: str
    base_url: str


def route_key(path: str) -> str:
    """The first two segments of ``path``: ``/v1/sites/12/hours`` -> ``/v1/sites``."""
    end = path.find("/", 1)
    if end < 0:
        return path
    end = path.find("/", end + 1)
    return path if end < 0 else path[:end]


class RouteTable:
    """Prefix -> upstream, built once from :data:`ROUTES` and the base URLs."""

    __slots__ = ("_by_prefix", "upstreams")

    def __init__(
        self,
        base_urls: Mapping[str, str],
        routes: Mapping[str, tuple[str, ...]] = ROUTES,
        local_routes: tuple[str, ...] = LOCAL_ROUTES,
    ) -> None:
        missing = set(routes) - set(base_urls)
        if missing:
            raise ValueError(f"No base URL for services: {', '.join(sorted(missing))}")
        self.upstreams: dict[str, Upstream] = {
            name: Upstream(name, base_urls[name].rstrip("/")) for name in routes
        }
        self._by_prefix: dict[str, Upstream] = {}
        for name, prefixes in routes.items():
            for prefix in prefixes:
                if route_key(prefix) != prefix:
                    raise ValueError(f"Route {prefix!r} must be exactly two path segments")
                if prefix in self._by_prefix:
                    raise ValueError(f"Route {prefix!r} is declared twice")
                self._by_prefix[prefix] = self.upstreams[name]
        local = Upstream(LOCAL, "")
        for prefix in local_routes:
            if prefix in self._by_prefix:
                raise ValueError(f"Route {prefix!r} is declared twice")
            self._by_prefix[prefix] = local

    def match(self, path: str) -> Upstream | None:
        return self._by_prefix.get(route_key(path))

    def prefixes(self, service: str) -> tuple[str, ...]:
        return tuple(p for p, u in self._by_prefix.items() if u.name == service)

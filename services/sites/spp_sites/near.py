"""Sites near a point: the bounds of the search, the box SQL narrows it to,
and the ranking by distance. Plain functions, no queries."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

from spp_shared.contracts.types import haversine_km
from spp_shared.kit.pagination import Keyset, as_number, as_text

# "Sites near a point" is a search around where someone is, at a
# département's scale: a metropolitan département averages 5,700 km², a
# disk of 43 km radius, and 50 km is further than anyone travels to a
# reception desk. Wider areas are listed by département or région (indexed,
# paged), never ranked by distance: 200 km around Paris is 4,000 sites
# ranked per request.
MAX_NEAR_RADIUS_KM: Final = 50.0
# The most candidates one `near` query ranks (the nearest first, chosen in
# SQL): all of 50 km around Paris (about 1,850 sites), four pages of the
# largest size. Paging stops there.
MAX_NEAR_CANDIDATES: Final = 2_000


# Nearest first: (distance in km, id), as :func:`rank` orders them.
BY_DISTANCE: Keyset[tuple[float, str]] = Keyset(as_number, as_text)


def bbox(lat: float, lon: float, radius_km: float) -> tuple[float, float, float, float]:
    dlat = radius_km / 111.32
    dlon = radius_km / (111.32 * max(math.cos(math.radians(lat)), 0.01))
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


def rank(
    points: Iterable[tuple[str, float, float]], lat: float, lon: float, radius_km: float
) -> list[tuple[float, str]]:
    """(distance in km, id) of the ``(id, lat, lon)`` points within ``radius_km``
    of the point, nearest first, ties by id (the order a cursor resumes in)."""
    return sorted(
        (d, point_id)
        for point_id, p_lat, p_lon in points
        if (d := haversine_km(lat, lon, p_lat, p_lon)) <= radius_km
    )

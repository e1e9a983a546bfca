"""Site identifiers: the kit's row ids (opaque, stable, sortable by creation)."""

from __future__ import annotations

from spp_shared.kit.ids import is_ulid, new_ulid


def new_site_id() -> str:
    return new_ulid()


def looks_like_site_id(ref: str) -> bool:
    return is_ulid(ref)

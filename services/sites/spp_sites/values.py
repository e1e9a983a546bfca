"""Flat column values of a site, shared by the API and the importer.

Both paths produce the same dict of column values, so a re-import of what
the API created is recognised as unchanged through one digest.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from spp_shared.contracts.sites import SiteCreate, SitePatch
from spp_sites.text import search_text

CONTENT_FIELDS: tuple[str, ...] = (
    "network_code",
    "external_code",
    "sp_code",
    "parent_sp_code",
    "name",
    "kind",
    "level",
    "siret",
    "address_line",
    "address_complement",
    "postcode",
    "commune_code",
    "commune_name",
    "departement_code",
    "region_code",
    "country",
    "latitude",
    "longitude",
    "phone",
    "email",
    "website",
    "appointment_url",
    "opening_hours",
    "accessibility",
    "status",
    "sp_member_since",
)


def digest(values: dict[str, Any]) -> str:
    payload = [values.get(f) for f in CONTENT_FIELDS]
    return hashlib.md5(orjson.dumps(payload, default=str), usedforsecurity=False).hexdigest()


def finish(values: dict[str, Any]) -> dict[str, Any]:
    """Derived columns: search text and content digest."""
    values["search_text"] = search_text(values["name"], values.get("commune_name"))
    values["content_hash"] = digest(values)
    return values


_ADDRESS = {
    "line": "address_line",
    "complement": "address_complement",
    "postcode": "postcode",
    "commune_code": "commune_code",
    "commune_name": "commune_name",
    "departement_code": "departement_code",
    "region_code": "region_code",
    "country": "country",
}
_CONTACT = {
    "phone": "phone",
    "email": "email",
    "website": "website",
    "appointment_url": "appointment_url",
}
_PLAIN = {
    "network": "network_code",
    "external_code": "external_code",
    "sp_code": "sp_code",
    "parent_sp_code": "parent_sp_code",
    "name": "name",
    "kind": "kind",
    "level": "level",
    "siret": "siret",
    "sp_member_since": "sp_member_since",
}


def _hours(model: Any) -> dict[str, Any] | None:
    return model.model_dump(mode="json", exclude_none=True) if model is not None else None


def values_from_create(data: SiteCreate) -> dict[str, Any]:
    values: dict[str, Any] = {col: getattr(data, f) for f, col in _PLAIN.items()}
    values["level"] = data.level.value
    address = data.address
    for f, col in _ADDRESS.items():
        values[col] = getattr(address, f) if address else None
    if values["country"] is None:
        values["country"] = "France"
    for f, col in _CONTACT.items():
        values[col] = getattr(data.contact, f) if data.contact else None
    values["latitude"] = data.coordinates.lat if data.coordinates else None
    values["longitude"] = data.coordinates.lon if data.coordinates else None
    values["opening_hours"] = _hours(data.opening_hours)
    values["accessibility"] = _hours(data.accessibility)
    values["status"] = "open"
    return values


def values_from_patch(patch: SitePatch) -> dict[str, Any]:
    """Only the columns the patch sets; nested objects replace per field."""
    given = patch.model_fields_set
    values: dict[str, Any] = {}
    for f, col in _PLAIN.items():
        if f in given:
            value = getattr(patch, f)
            values[col] = value.value if f == "level" else value
    if "address" in given:
        address = patch.address
        for f, col in _ADDRESS.items():
            if address is None:
                values[col] = "France" if f == "country" else None
            elif f in address.model_fields_set or f != "country":
                values[col] = getattr(address, f)
    if "contact" in given:
        for f, col in _CONTACT.items():
            values[col] = getattr(patch.contact, f) if patch.contact else None
    if "coordinates" in given:
        values["latitude"] = patch.coordinates.lat if patch.coordinates else None
        values["longitude"] = patch.coordinates.lon if patch.coordinates else None
    if "opening_hours" in given:
        values["opening_hours"] = _hours(patch.opening_hours)
    if "accessibility" in given:
        values["accessibility"] = _hours(patch.accessibility)
    return values

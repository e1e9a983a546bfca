"""Mapping each format's records (read by :mod:`spp_shared.kit.ingest`) to site columns.

A mapper turns one record into a :class:`Row`: the columns the record
carries (absent columns are left as they are on an existing site, so an
enrichment never wipes what it does not know), plus warnings. A record that
cannot be imported raises :class:`RowError`.

Our own format is strict: an invalid value rejects the row. The programme's
export and the France services list are taken as published: an invalid
optional value is dropped with a warning, only a missing key or name rejects.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from spp_shared.contracts.sites import SitesAction
from spp_shared.contracts.types import (
    WEEKDAYS,
    OpeningHours,
    check_visible_code,
    normalize_arrondissement_code,
    normalize_commune_code,
    normalize_departement_code,
    normalize_email,
    normalize_phone,
    normalize_postcode,
    normalize_region_code,
    normalize_siret,
    normalize_url,
)
from spp_shared.kit.identity import Principal
from spp_shared.kit.ingest import FileProblem, RowError
from spp_shared.kit.ingest.records import MAX_COLUMNS
from spp_sites.geo import apply_geography
from spp_sites.importer import fields as F
from spp_sites.importer.formats import Format, csv_format
from spp_sites.importer.networks import NetworkResolver
from spp_sites.permissions import may_reach
from spp_sites.text import fold
from spp_sites.values import CONTENT_FIELDS

Warning_ = tuple[str | None, str]


@dataclass(slots=True)
class Row:
    line: int
    values: dict[str, Any]
    warnings: list[Warning_] = field(default_factory=list)
    # SP+ export only: the structure's own identifier, wanted as external code.
    identifier: str | None = None


# --- mapping ------------------------------------------------------------------

# Our flat columns are the site's content columns by their API name, with the
# opening hours as one column a weekday; accessibility is not imported.
OWN_COLUMNS: Final = (
    *(F.api_field(c) for c in CONTENT_FIELDS if c not in ("opening_hours", "accessibility")),
    *WEEKDAYS,
)
NDJSON_KEYS: Final = frozenset({*OWN_COLUMNS, "opening_hours"})
_GEO: Final = ("commune_code", "departement_code", "region_code")
_SPACES: Final = re.compile(r"\s+")
# Published files have line breaks and tabs in some cells (addresses,
# comments): those become spaces; other control characters refuse the row.
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class MapContext:
    resolver: NetworkResolver
    principal: Principal
    may_create_networks: bool  # the format names networks and the caller is an admin


class Mapper:
    format: Format
    key_by_sp_code = False

    def __init__(self, ctx: MapContext) -> None:
        self.ctx = ctx

    def network(self, name: str, *, creatable: bool) -> str:
        ctx = self.ctx
        code = ctx.resolver.resolve(name)
        if code is None:
            if not creatable:
                raise RowError("network", f"unknown network '{name}'")
            if not ctx.may_create_networks:
                raise RowError(
                    "network", f"unknown network '{name}' (only programme admins create networks)"
                )
            try:
                code = ctx.resolver.plan(name)
            except ValueError as exc:
                raise RowError("network", str(exc)) from None
        if not may_reach(ctx.principal, SitesAction.sites_import, code):
            raise RowError("network", f"not your network: you may not import sites of '{code}'")
        return code

    def geography(self, row: Row) -> None:
        for message in apply_geography(row.values):
            row.warnings.append(("commune_code", message))


def _is_france(country: str | None) -> bool:
    return country is None or fold(country) == "france"


class OwnMapper(Mapper):
    """Our flat columns (CSV header or NDJSON keys)."""

    format = Format.csv

    def map(self, line: int, rec: Mapping[str, Any]) -> Row:
        v: dict[str, Any] = {}
        net = F.text(rec.get("network"), "network_code")
        if net is None:
            raise RowError("network", "required")
        ext = F.text(rec.get("external_code"), "external_code")
        if ext is None:
            raise RowError("external_code", "required")
        v["external_code"] = F.external_code(ext)
        v["network_code"] = self.network(net, creatable=False)
        for col in ("sp_code", "parent_sp_code"):
            if col in rec:
                s = F.text(rec[col], col)
                v[col] = F.sp_code(s, col) if s else None
        if "name" in rec:
            v["name"] = F.text(rec["name"], "name")
            if v["name"] is None:
                raise RowError("name", "required")
        for col in ("kind", "address_line", "address_complement", "commune_name"):
            if col in rec:
                v[col] = F.text(rec[col], col)
        if "level" in rec:
            s = F.text(rec["level"], "level")
            v["level"] = F.level(s) if s else "site"
        if "status" in rec:
            s = F.text(rec["status"], "status")
            v["status"] = F.status(s) if s else "open"
        if "siret" in rec:
            s = F.text(rec["siret"], "siret", checked_later=True)
            v["siret"] = F.checked("siret", normalize_siret, s) if s else None
        if "country" in rec:
            v["country"] = F.text(rec["country"], "country") or F.FRANCE
        france = _is_france(v.get("country"))
        if france and v.get("country") is not None:
            v["country"] = F.FRANCE
        self._checked(v, rec, "postcode", normalize_postcode if france else None)
        self._checked(v, rec, "phone", normalize_phone if france else None)
        self._checked(v, rec, "email", normalize_email)
        self._checked(v, rec, "website", normalize_url)
        self._checked(v, rec, "appointment_url", normalize_url)
        for col, fn in zip(
            _GEO,
            (normalize_commune_code, normalize_departement_code, normalize_region_code),
            strict=True,
        ):
            if col in rec:
                s = F.text(rec[col], col, checked_later=True)
                v[col] = F.checked(col, fn, s) if s and france else None
        if "latitude" in rec or "longitude" in rec:
            v["latitude"], v["longitude"] = F.coordinates(
                rec.get("latitude"), rec.get("longitude"), in_france=france
            )
        if "sp_member_since" in rec:
            s = F.text(rec["sp_member_since"], "sp_member_since")
            v["sp_member_since"] = F.iso_date(s, "sp_member_since") if s else None
        days = {d: rec[d] for d in WEEKDAYS if d in rec}
        if days:
            for day, value in days.items():
                if value is not None and not isinstance(value, str):
                    raise RowError(day, "must be a string like '09:00 - 12:00 / 13:30 - 17:00'")
            v["opening_hours"] = F.day_hours(days)
        if "opening_hours" in rec:
            if days:
                raise RowError("opening_hours", "give opening_hours or weekday keys, not both")
            v["opening_hours"] = _opening_hours_object(rec["opening_hours"])
        row = Row(line, v)
        if france and not v.keys().isdisjoint(_GEO):
            self.geography(row)
        return row

    @staticmethod
    def _checked(v: dict[str, Any], rec: Mapping[str, Any], col: str, fn: Any) -> None:
        if col not in rec:
            return
        s = F.text(rec[col], col, checked_later=fn is not None)
        value = F.checked(col, fn, s) if s and fn is not None else s
        limit = F.MAX_LENGTHS.get(col)
        if value is not None and limit is not None and len(value) > limit:
            raise RowError(col, f"longer than {limit} characters")
        v[col] = value


def _opening_hours_object(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RowError("opening_hours", "must be an object keyed by weekday")
    try:
        hours = OpeningHours.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise RowError("opening_hours", f"{where}: {first.get('msg', 'invalid')}") from None
    return hours.model_dump(mode="json", exclude_none=True)


class _Cells:
    """Cells of a CSV record by column name (missing columns read as empty)."""

    __slots__ = ("cells", "index")

    def __init__(self, index: Mapping[str, int], cells: Sequence[str]) -> None:
        self.index = index
        self.cells = cells

    def __call__(self, column: str) -> str:
        i = self.index.get(column)
        if i is None or i >= len(self.cells):
            return ""
        value = self.cells[i]
        if not value:
            return ""
        if value.isprintable():
            return _SPACES.sub(" ", value).strip()
        if bad := _CONTROL.search(value):
            raise RowError(column, F.control_reason(bad.group()))
        # Bidirectional controls and Unicode's line separators refuse the row
        # as in every single-line text (only CR, LF and tabs become spaces).
        F.single_line(value, column)
        return _SPACES.sub(" ", value).strip()


def _normalise_or_drop(row: Row, column: str, fn: Any, value: str) -> Any:
    """Normalise ``value``; on error keep nothing and warn (published data)."""
    if not value:
        return None
    try:
        result = fn(value)
    except ValueError as exc:
        row.warnings.append((F.api_field(column), f"{exc}: {value!r} ignored"))
        return None
    limit = F.MAX_LENGTHS.get(column)
    if isinstance(result, str) and limit is not None and len(result) > limit:
        row.warnings.append((F.api_field(column), f"longer than {limit} characters: ignored"))
        return None
    return result


def _cut(row: Row, column: str, value: str) -> str | None:
    if not value:
        return None
    limit = F.MAX_LENGTHS.get(column)
    if limit is not None and len(value) > limit:
        row.warnings.append((F.api_field(column), f"cut to {limit} characters"))
        return value[:limit]
    return value


_REGION_LEVEL = re.compile(r"\b(?:direction|dir|sous direction) region")
_DEPARTEMENT_LEVEL = re.compile(r"\bdirection departementale")
_NATIONAL_LEVEL = re.compile(r"\b(?:direction (?:nationale|centrale)|administration centrale)")


def level_of_typology(typology: str) -> str:
    folded = fold(typology)
    if _REGION_LEVEL.search(folded):
        return "region"
    if _DEPARTEMENT_LEVEL.search(folded):
        return "departement"
    if _NATIONAL_LEVEL.search(folded):
        return "national"
    return "site"


class SpPlusMapper(Mapper):
    """The programme's structures export, as published (see the data README)."""

    format = Format.sp_plus_export
    key_by_sp_code = True

    CODE = "Code SP+ de la structure"
    NETWORK = "Intitulé du réseau"
    TYPOLOGY = "Intitulé de la typologie"
    NAME = "Intitulé de la structure"
    USER_NAME = "Intitulé structure usager"
    IDENTIFIER = "Identifiant de la structure"
    IDENTIFIER_TYPE = "Type d'identifiant"
    PARENT = "Code SP+ structure parent"

    def __init__(self, ctx: MapContext, header: Sequence[str]) -> None:
        super().__init__(ctx)
        self.index = {h: i for i, h in enumerate(header)}

    def map(self, line: int, cells: Sequence[str]) -> Row:
        g = _Cells(self.index, cells)
        code = g(self.CODE)
        if not code:
            raise RowError("sp_code", "required")
        F.sp_code(code, "sp_code")
        network_name = g(self.NETWORK)
        if not network_name:
            raise RowError("network", "required")
        row = Row(line, {"sp_code": code})
        v = row.values
        v["network_code"] = self.network(network_name, creatable=True)
        name = g(self.USER_NAME) or g(self.NAME)
        if not name:
            raise RowError("name", "required")
        v["name"] = _cut(row, "name", name)
        typology = g(self.TYPOLOGY)
        v["kind"] = _cut(row, "kind", typology)
        v["level"] = level_of_typology(typology) if typology else "site"
        identifier = "".join(g(self.IDENTIFIER).split())
        if len(identifier) > F.MAX_LENGTHS["external_code"]:
            row.warnings.append(("external_code", "identifier too long: the SP+ code is used"))
            identifier = ""
        try:
            check_visible_code(identifier)
        except ValueError as exc:
            row.warnings.append(("external_code", f"identifier {exc}: the SP+ code is used"))
            identifier = ""
        row.identifier = identifier or None
        siret = g(self.IDENTIFIER_TYPE).upper() == "SIRET"
        v["siret"] = (
            _normalise_or_drop(row, "siret", normalize_siret, identifier) if siret else None
        )
        parent = g(self.PARENT)
        v["parent_sp_code"] = (
            parent if parent and parent != code and F.CODE_RE.fullmatch(parent) else None
        )
        country = g("PAYS") or F.FRANCE
        france = _is_france(country)
        v["country"] = F.FRANCE if france else _cut(row, "country", country)
        v["address_line"] = _cut(row, "address_line", g("Adresse"))
        v["address_complement"] = _cut(row, "address_complement", g("Compléments Adresse"))
        v["commune_name"] = _cut(row, "commune_name", g("Ville"))
        postcode = g("Code postal de la structure")
        if france:
            v["postcode"] = _normalise_or_drop(row, "postcode", normalize_postcode, postcode)
        else:
            v["postcode"] = postcode if 0 < len(postcode) <= 5 else None
        v["website"] = _normalise_or_drop(row, "website", normalize_url, g("URL du site internet"))
        v["email"] = _normalise_or_drop(
            row, "email", normalize_email, g("Boîte à lettre fonctionnelle")
        )
        v["status"] = "closed" if g("Actif").lower() == "non" else "open"
        if france:
            arrondissement = g("INSEE Arrondissement")
            commune = (
                _normalise_or_drop(
                    row, "commune_code", normalize_arrondissement_code, arrondissement
                )
                if arrondissement
                else None
            )
            v["commune_code"] = commune or _normalise_or_drop(
                row, "commune_code", normalize_commune_code, g("INSEE Ville")
            )
            v["departement_code"] = _normalise_or_drop(
                row, "departement_code", normalize_departement_code, g("INSEE Département")
            )
            v["region_code"] = _normalise_or_drop(
                row, "region_code", normalize_region_code, g("INSEE Région")
            )
            self.geography(row)
        else:  # abroad: the export's "cons..." pseudo-codes are not INSEE geography
            v["commune_code"] = v["departement_code"] = v["region_code"] = None
        return row


_FS_DAYS: Final = {
    "h_lundi": "monday",
    "h_mardi": "tuesday",
    "h_mercredi": "wednesday",
    "h_jeudi": "thursday",
    "h_vendredi": "friday",
    "h_samedi": "saturday",
}
_EMAIL_SPLIT: Final = re.compile(r"\s+-\s+|[;,\s]+")


class FranceServicesMapper(Mapper):
    """ANCT's list of France services: enriches (or creates) france-services sites."""

    format = Format.france_services
    NETWORK = "france-services"

    def __init__(self, ctx: MapContext, header: Sequence[str]) -> None:
        super().__init__(ctx)
        self.index = {h.lower(): i for i, h in enumerate(header)}

    def network_code(self) -> str:
        if self.ctx.resolver.resolve(self.NETWORK) is None:
            return self.network("France services", creatable=True)
        return self.network(self.NETWORK, creatable=False)

    def map(self, line: int, cells: Sequence[str]) -> Row:
        g = _Cells(self.index, cells)
        ext = g("id_fs")
        if not ext:
            raise RowError("external_code", "required (id_fs)")
        key = {"network_code": self.network_code(), "external_code": F.external_code(ext)}
        row = Row(line, key)
        found: dict[str, Any] = {
            "name": _cut(row, "name", g("lib_fs")),
            "address_line": _cut(row, "address_line", g("adresse")),
            "address_complement": _cut(row, "address_complement", g("complement_adresse")),
            "postcode": _normalise_or_drop(row, "postcode", normalize_postcode, g("code_postal")),
            "commune_name": _cut(row, "commune_name", g("lib_com")),
            "commune_code": _normalise_or_drop(
                row, "commune_code", normalize_commune_code, g("insee_com")
            ),
            "departement_code": _normalise_or_drop(
                row, "departement_code", normalize_departement_code, g("insee_dep")
            ),
            "phone": _normalise_or_drop(row, "phone", normalize_phone, g("telephone")),
        }
        emails = [e for e in _EMAIL_SPLIT.split(g("mail")) if e]
        if len(emails) > 1:
            row.warnings.append(("email", f"{len(emails)} addresses given: the first is kept"))
        found["email"] = _normalise_or_drop(
            row, "email", normalize_email, emails[0] if emails else ""
        )
        appointment = g("prise_rdv")
        if "://" in appointment or appointment.lower().startswith("www."):
            found["appointment_url"] = _normalise_or_drop(
                row, "appointment_url", normalize_url, appointment
            )
        lat, lon = g("latitude"), g("longitude")
        if lat or lon:
            try:
                found["latitude"], found["longitude"] = F.coordinates(lat, lon, in_france=True)
            except RowError as exc:
                row.warnings.append(("latitude", f"{exc.reason}: coordinates ignored"))
        try:
            found["opening_hours"] = F.day_hours({day: g(col) for col, day in _FS_DAYS.items()})
        except RowError as exc:
            row.warnings.append(("opening_hours", f"{exc.field}: {exc.reason}: hours ignored"))
        row.values.update((k, val) for k, val in found.items() if val is not None)
        if "commune_code" in row.values or "departement_code" in row.values:
            row.values["country"] = F.FRANCE
            self.geography(row)
        return row


def mapper_for(fmt: Format, ctx: MapContext, header: Sequence[str]) -> Mapper:
    if fmt is Format.sp_plus_export:
        return SpPlusMapper(ctx, header)
    if fmt is Format.france_services:
        return FranceServicesMapper(ctx, header)
    return OwnMapper(ctx)


def check_own_header(header: Sequence[str]) -> None:
    unknown = [h for h in header if h not in OWN_COLUMNS]
    missing = [c for c in ("network", "external_code") if c not in header]
    duplicated = sorted(h for h, n in Counter(header).items() if n > 1)
    errors = [{"field": h, "reason": "unknown column"} for h in unknown]
    errors += [{"field": c, "reason": "required column missing"} for c in missing]
    errors += [{"field": c, "reason": "column given twice"} for c in duplicated]
    if errors:
        raise FileProblem(
            "The header row is not one this importer knows: use our flat columns "
            f"({', '.join(OWN_COLUMNS)}), the SP+ structures export or the France services list.",
            errors=errors,
        )


def detect_csv(header: Sequence[str]) -> Format:
    if len(header) > MAX_COLUMNS:
        raise FileProblem(
            f"The header row has {len(header)} columns; no known layout has more than "
            f"{MAX_COLUMNS}. Is the delimiter right (',' or ';')?"
        )
    fmt = csv_format(list(header))
    if fmt is Format.csv:
        check_own_header(header)
    return fmt

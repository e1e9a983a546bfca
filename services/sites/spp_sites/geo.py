"""French geography reference (INSEE COG 2024) for the sites service.

Loaded once from the CSV files in ``reference/geo`` (see its README for the
sources and licence). Codes change every year: a well-formed code missing
from this vintage is reported as a warning, never rejected.
``apply_geography`` is the rule the API and the importer apply to a site's
address with it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any, Final

from spp_shared.contracts.types import (
    departement_of_commune,
    normalize_commune_code,
    normalize_departement_code,
    normalize_region_code,
)
from spp_sites.errors import InvalidGeography

__all__ = [
    "COG_VINTAGE",
    "REFERENCE_DIR",
    "CommuneRef",
    "DepartementRef",
    "GeoReference",
    "GeoResolution",
    "RegionRef",
    "apply_geography",
]

COG_VINTAGE: Final = "COG 2024"
REFERENCE_DIR: Final = Path(__file__).resolve().parent / "reference" / "geo"
COMMUNES_FILE: Final = "cog2024_communes_datas.fun.csv"
DEPARTEMENTS_FILE: Final = "cog2024_departements_datas.fun.csv"
REGIONS_FILE: Final = "cog2024_regions_datas.fun.csv"


@dataclass(frozen=True, slots=True)
class RegionRef:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class DepartementRef:
    code: str
    name: str
    region: str


@dataclass(frozen=True, slots=True)
class CommuneRef:
    """A commune of the COG.

    ``type`` is ``COM`` (commune), ``COMD`` (commune déléguée) or ``ARM``
    (municipal arrondissement of Paris, Lyon, Marseille); ``parent`` is the
    commune a ``COMD`` or ``ARM`` belongs to. ``postcode`` is the first of
    ``postcodes``, all the La Poste postcodes of the commune.
    """

    code: str
    name: str
    departement: str
    region: str
    postcode: str | None
    lat: float | None
    lon: float | None
    type: str
    parent: str | None = None
    postcodes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GeoResolution:
    """Normalised codes, completed from the reference where absent.

    Given codes are kept as given (normalised); inconsistencies and codes
    unknown to the vintage are listed in ``warnings``.
    """

    commune_code: str | None
    departement_code: str | None
    region_code: str | None
    commune: CommuneRef | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def conflicts(self) -> list[str]:
        """The warnings that say two given codes disagree (not merely unknown)."""
        return [w for w in self.warnings if _CONFLICT in w]


_CONFLICT = "does not match"


def _float(text: str) -> float | None:
    return float(text) if text else None


class GeoReference:
    """Lookup of communes, départements and régions of one COG vintage."""

    vintage: str = COG_VINTAGE

    def __init__(
        self,
        communes: dict[str, CommuneRef],
        departements: dict[str, DepartementRef],
        regions: dict[str, RegionRef],
        vintage: str = COG_VINTAGE,
    ) -> None:
        self._communes = communes
        self._departements = departements
        self._regions = regions
        self.vintage = vintage

    # -- loading ---------------------------------------------------------------

    @classmethod
    def load(cls, directory: Path = REFERENCE_DIR) -> GeoReference:
        regions: dict[str, RegionRef] = {}
        with (directory / REGIONS_FILE).open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                regions[row["insee_reg"]] = RegionRef(row["insee_reg"], row["region"])

        departements: dict[str, DepartementRef] = {}
        with (directory / DEPARTEMENTS_FILE).open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                code = row["insee_dep"]
                departements[code] = DepartementRef(code, row["departement"], row["insee_reg"])

        # The file has one row per (commune, postcode); a COMD may share its
        # code with its parent COM: the COM row wins, postcodes are pooled.
        chosen: dict[str, list[str]] = {}
        postcodes: dict[str, dict[str, None]] = {}
        with (directory / COMMUNES_FILE).open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            i_code, i_pc, i_type = (
                header.index(c) for c in ("insee_com", "code_postal", "commune_type")
            )
            for line in reader:
                code = line[i_code]
                previous = chosen.get(code)
                if previous is None or (previous[i_type] != "COM" and line[i_type] == "COM"):
                    chosen[code] = line
                if line[i_pc]:
                    postcodes.setdefault(code, {})[line[i_pc]] = None
        col = {name: header.index(name) for name in header}
        communes: dict[str, CommuneRef] = {}
        for code, line in chosen.items():
            codes = tuple(postcodes.get(code, ()))
            communes[code] = CommuneRef(
                code=code,
                name=line[col["commune"]],
                departement=line[col["insee_dep"]],
                region=line[col["insee_reg"]],
                postcode=codes[0] if codes else None,
                lat=_float(line[col["lat"]]),
                lon=_float(line[col["lng"]]),
                type=line[col["commune_type"]],
                parent=line[col["insee_parente"]] or None,
                postcodes=codes,
            )
        # A COMD with a code of its own: département and région of its parent.
        for code, ref in list(communes.items()):
            if not ref.departement or not ref.region:
                parent = communes.get(ref.parent or "")
                departement = ref.departement or (
                    parent.departement if parent else departement_of_commune(code)
                )
                dep_ref = departements.get(departement)
                region = ref.region or (
                    parent.region if parent else dep_ref.region if dep_ref else ""
                )
                communes[code] = replace(ref, departement=departement, region=region)
        _add_plm_communes(communes)
        return cls(communes, departements, regions)

    @classmethod
    def default(cls) -> GeoReference:
        """The packaged COG 2024 reference, loaded once per process."""
        return _default_reference()

    # -- lookups ---------------------------------------------------------------

    def commune(self, code: str) -> CommuneRef | None:
        """The commune of a (possibly prefixed) code; ``None`` when unknown or malformed."""
        ref = self._communes.get(code)
        if ref is not None:
            return ref
        try:
            return self._communes.get(normalize_commune_code(code))
        except ValueError:
            return None

    def departement(self, code: str) -> DepartementRef | None:
        ref = self._departements.get(code)
        if ref is not None:
            return ref
        try:
            return self._departements.get(normalize_departement_code(code))
        except ValueError:
            return None

    def region(self, code: str) -> RegionRef | None:
        ref = self._regions.get(code)
        if ref is not None:
            return ref
        try:
            return self._regions.get(normalize_region_code(code))
        except ValueError:
            return None

    def __len__(self) -> int:
        return len(self._communes)

    # -- resolution ------------------------------------------------------------

    def resolve(
        self,
        commune_code: str | None = None,
        departement_code: str | None = None,
        region_code: str | None = None,
    ) -> GeoResolution:
        """Normalise the three codes and fill the missing ones from the commune.

        A malformed code raises ``ValueError``. A well-formed code that this
        vintage does not know, or codes that disagree with each other, give
        warnings; the codes given are returned as given (normalised).
        """
        commune = normalize_commune_code(commune_code) if commune_code else None
        departement = normalize_departement_code(departement_code) if departement_code else None
        region = normalize_region_code(region_code) if region_code else None
        warnings: list[str] = []

        ref: CommuneRef | None = None
        region_warned = False
        if commune is not None:
            ref = self._communes.get(commune)
            if ref is None:
                warnings.append(f"commune {commune} is not in {self.vintage}")
                expected_dep = departement_of_commune(commune)
                expected_reg = None
            else:
                expected_dep = ref.departement or departement_of_commune(commune)
                expected_reg = ref.region or None
            if departement is None:
                departement = expected_dep
            elif departement != expected_dep:
                warnings.append(
                    f"département {departement} does not match commune {commune} "
                    f"(département {expected_dep})"
                )
            if expected_reg is not None:
                if region is None:
                    region = expected_reg
                elif region != expected_reg:
                    region_warned = True
                    warnings.append(
                        f"région {region} does not match commune {commune} (région {expected_reg})"
                    )

        if departement is not None:
            dep_ref = self._departements.get(departement)
            if dep_ref is None:
                warnings.append(f"département {departement} is not in {self.vintage}")
            elif region is None:
                region = dep_ref.region
            elif region != dep_ref.region and not region_warned:
                warnings.append(
                    f"région {region} does not match département {departement} "
                    f"(région {dep_ref.region})"
                )

        if region is not None and region not in self._regions:
            warnings.append(f"région {region} is not in {self.vintage}")

        return GeoResolution(commune, departement, region, ref, warnings)


_PLM_NAMES: Final = {"75056": "Paris", "13055": "Marseille", "69123": "Lyon"}


def _add_plm_communes(communes: dict[str, CommuneRef]) -> None:
    """Add Paris, Marseille and Lyon, which the file only has as arrondissements.

    Their département, région and postcodes come from the arrondissements;
    the point is the mean of the arrondissements' centroids (approximate).
    """
    for code, name in _PLM_NAMES.items():
        if code in communes:
            continue
        parts = sorted(
            (c for c in communes.values() if c.parent == code and c.type == "ARM"),
            key=lambda c: c.code,
        )
        if not parts:
            continue
        located = [c for c in parts if c.lat is not None and c.lon is not None]
        postcodes = tuple(dict.fromkeys(p for c in parts for p in c.postcodes))
        communes[code] = CommuneRef(
            code=code,
            name=name,
            departement=parts[0].departement,
            region=parts[0].region,
            postcode=postcodes[0] if postcodes else None,
            lat=round(sum(c.lat or 0.0 for c in located) / len(located), 5) if located else None,
            lon=round(sum(c.lon or 0.0 for c in located) / len(located), 5) if located else None,
            type="COM",
            parent=None,
            postcodes=postcodes,
        )


@cache
def _default_reference() -> GeoReference:
    return GeoReference.load(REFERENCE_DIR)


def apply_geography(values: dict[str, Any], *, strict: bool = False) -> list[str]:
    """Fill département, région and commune name from the INSEE reference.

    Returns the warnings (codes unknown to the vintage, or contradicting each
    other); ``strict`` refuses contradictions instead, as the API does (the
    importer, reading other people's files, keeps them with a warning).
    """
    if (values.get("country") or "France") != "France":
        return []
    geo = GeoReference.default()
    try:
        resolved = geo.resolve(
            values.get("commune_code"), values.get("departement_code"), values.get("region_code")
        )
    except ValueError as exc:
        raise InvalidGeography(str(exc), errors=[{"field": "address", "reason": str(exc)}]) from exc
    if strict and resolved.conflicts:
        raise InvalidGeography(
            "; ".join(resolved.conflicts),
            errors=[{"field": "address", "reason": c} for c in resolved.conflicts],
        )
    values["commune_code"] = resolved.commune_code
    values["departement_code"] = resolved.departement_code
    values["region_code"] = resolved.region_code
    if resolved.commune is not None and not values.get("commune_name"):
        values["commune_name"] = resolved.commune.name
    return list(resolved.warnings)

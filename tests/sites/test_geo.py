"""GeoReference: INSEE COG 2024 communes, départements and régions."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from spp_sites.geo import (
    COG_VINTAGE,
    REFERENCE_DIR,
    CommuneRef,
    DepartementRef,
    GeoReference,
    RegionRef,
)

STRUCTURES = Path("/work/shared/data/sites/sp_plus_export-structures.csv")


@pytest.fixture(scope="module")
def geo() -> GeoReference:
    return GeoReference.default()


def test_vintage_and_files() -> None:
    assert COG_VINTAGE == "COG 2024"
    assert GeoReference.default().vintage == "COG 2024"
    names = sorted(p.name for p in REFERENCE_DIR.glob("*.csv"))
    assert names == [
        "cog2024_communes_datas.fun.csv",
        "cog2024_departements_datas.fun.csv",
        "cog2024_regions_datas.fun.csv",
    ]
    assert (REFERENCE_DIR.parent / "README.md").read_text(encoding="utf-8").count("Licence")


def test_default_is_cached() -> None:
    assert GeoReference.default() is GeoReference.default()


def test_load_reads_every_commune() -> None:
    assert len(GeoReference.load()) > 34_000


def test_commune(geo: GeoReference) -> None:
    laval = geo.commune("53130")
    assert laval == CommuneRef(
        code="53130",
        name="Laval",
        departement="53",
        region="52",
        postcode="53000",
        lat=48.05779,
        lon=-0.76918,
        type="COM",
        parent=None,
        postcodes=("53000",),
    )
    assert geo.commune("com53130") is laval


def test_commune_corsica_and_overseas(geo: GeoReference) -> None:
    ajaccio = geo.commune("2A004")
    assert ajaccio is not None
    assert (ajaccio.name, ajaccio.departement, ajaccio.region) == ("Ajaccio", "2A", "94")
    assert geo.commune("2a004") is ajaccio
    saint_denis = geo.commune("97411")
    assert saint_denis is not None
    assert (saint_denis.name, saint_denis.departement, saint_denis.region) == (
        "Saint-Denis",
        "974",
        "04",
    )
    assert saint_denis.postcodes == ("97400", "97417", "97490")
    assert saint_denis.postcode == "97400"
    mamoudzou = geo.commune("97611")
    assert mamoudzou is not None
    assert mamoudzou.departement == "976"


def test_comd_sharing_code_prefers_com(geo: GeoReference) -> None:
    # 01015 is both "Arboys en Bugey" (COM) and "Arbignieu" (COMD).
    ref = geo.commune("01015")
    assert ref is not None
    assert (ref.name, ref.type, ref.departement, ref.region) == (
        "Arboys en Bugey",
        "COM",
        "01",
        "84",
    )


def test_municipal_arrondissements(geo: GeoReference) -> None:
    marseille_2 = geo.commune("13202")
    assert marseille_2 is not None
    assert (marseille_2.type, marseille_2.parent, marseille_2.departement) == ("ARM", "13055", "13")
    paris_16 = geo.commune("75116")
    assert paris_16 is not None
    assert paris_16.postcodes == ("75016", "75116")
    # The file only lists Paris, Marseille and Lyon through their arrondissements.
    for code, name, dep, count in (
        ("75056", "Paris", "75", 21),
        ("13055", "Marseille", "13", 16),
        ("69123", "Lyon", "69", 9),
    ):
        city = geo.commune(code)
        assert city is not None
        assert (city.name, city.type, city.departement) == (name, "COM", dep)
        assert len(city.postcodes) == count
        assert city.lat is not None
        assert city.lon is not None


def test_commune_unknown_or_malformed(geo: GeoReference) -> None:
    assert geo.commune("97501") is None  # Saint-Pierre-et-Miquelon: not in the file
    assert geo.commune("53999") is None
    assert geo.commune("20004") is None
    assert geo.commune("") is None


def test_departement_and_region(geo: GeoReference) -> None:
    assert geo.departement("53") == DepartementRef(code="53", name="Mayenne", region="52")
    assert geo.departement("dep53") == geo.departement("53")
    assert geo.departement("4") == DepartementRef(
        code="04", name="Alpes-de-Haute-Provence", region="93"
    )
    assert geo.departement("2B") == DepartementRef(code="2B", name="Haute-Corse", region="94")
    assert geo.departement("974") == DepartementRef(code="974", name="La Réunion", region="04")
    assert geo.departement("975") is None
    assert geo.departement("20") is None
    assert geo.region("52") == RegionRef(code="52", name="Pays de la Loire")
    assert geo.region("reg52") == geo.region("52")
    assert geo.region("reg94") == RegionRef(code="94", name="Corse")
    assert geo.region("98") is None


def test_resolve_from_commune(geo: GeoReference) -> None:
    result = geo.resolve("com53130")
    assert (result.commune_code, result.departement_code, result.region_code) == (
        "53130",
        "53",
        "52",
    )
    assert result.commune is not None
    assert result.commune.name == "Laval"
    assert result.warnings == []


def test_resolve_export_row(geo: GeoReference) -> None:
    result = geo.resolve("com53130", "dep53", "reg52")
    assert (result.commune_code, result.departement_code, result.region_code) == (
        "53130",
        "53",
        "52",
    )
    assert result.warnings == []


@pytest.mark.parametrize(
    ("commune", "departement", "region"),
    [
        ("2A004", "2A", "94"),
        ("97411", "974", "04"),
        ("13202", "13", "93"),
        ("75056", "75", "11"),
        ("04070", "04", "93"),
    ],
)
def test_resolve_derives(geo: GeoReference, commune: str, departement: str, region: str) -> None:
    result = geo.resolve(commune)
    assert (result.departement_code, result.region_code) == (departement, region)
    assert result.warnings == []


def test_resolve_departement_only(geo: GeoReference) -> None:
    result = geo.resolve(None, "dep53", None)
    assert (result.commune_code, result.departement_code, result.region_code) == (None, "53", "52")
    assert result.commune is None
    assert result.warnings == []


def test_resolve_nothing(geo: GeoReference) -> None:
    result = geo.resolve()
    assert (result.commune_code, result.departement_code, result.region_code) == (None, None, None)
    assert result.warnings == []


def test_resolve_unknown_commune_is_a_warning(geo: GeoReference) -> None:
    result = geo.resolve("97501", "dep975", None)
    assert (result.commune_code, result.departement_code, result.region_code) == (
        "97501",
        "975",
        None,
    )
    assert result.commune is None
    assert result.warnings == [
        "commune 97501 is not in COG 2024",
        "département 975 is not in COG 2024",
    ]
    metro = geo.resolve("53999")
    assert (metro.departement_code, metro.region_code) == ("53", "52")
    assert metro.warnings == ["commune 53999 is not in COG 2024"]


def test_resolve_inconsistent_departement(geo: GeoReference) -> None:
    result = geo.resolve("2A004", "2B", None)
    assert (result.departement_code, result.region_code) == ("2B", "94")
    assert result.warnings == ["département 2B does not match commune 2A004 (département 2A)"]


def test_resolve_inconsistent_region(geo: GeoReference) -> None:
    result = geo.resolve("53130", None, "11")
    assert result.region_code == "11"
    assert result.warnings == ["région 11 does not match commune 53130 (région 52)"]
    result = geo.resolve(None, "53", "reg11")
    assert result.warnings == ["région 11 does not match département 53 (région 52)"]


@pytest.mark.parametrize(
    ("commune", "departement", "region", "reason"),
    [
        ("20004", None, None, "2A or 2B"),
        ("consUS0001", None, None, "5 characters"),
        (None, "dep20", None, "2A or 2B"),
        (None, "96", None, "01-95"),
        (None, None, "reg98", "INSEE région code"),
        ("53130", "dep530", None, "01-95"),
    ],
)
def test_resolve_malformed_raises(
    geo: GeoReference,
    commune: str | None,
    departement: str | None,
    region: str | None,
    reason: str,
) -> None:
    with pytest.raises(ValueError, match=reason):
        geo.resolve(commune, departement, region)


def test_resolve_structure_export() -> None:
    """Every French structure of the programme's export resolves without error."""
    if not STRUCTURES.exists():
        pytest.skip("shared data set not available")
    geo = GeoReference.default()
    resolved = unknown = mismatched = 0
    with STRUCTURES.open(encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f, delimiter=";"):
            commune = row["INSEE Ville"]
            if not commune.startswith("com"):
                continue  # consulates and embassies abroad
            departement = row["INSEE Département"] or None
            region = row["INSEE Région"] or None
            if region in ("reg97", "reg98"):  # pseudo-régions of overseas collectivities
                region = None
            result = geo.resolve(commune, departement, region)
            resolved += 1
            unknown += any("is not in" in w for w in result.warnings)
            mismatched += any("does not match" in w for w in result.warnings)
    assert resolved > 14_000
    # Codes change every year: a few old codes are expected, but not many.
    assert unknown < resolved * 0.05
    assert mismatched < resolved * 0.01

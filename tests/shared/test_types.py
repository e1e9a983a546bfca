"""Value types of spp_shared.contracts: plain functions and pydantic types.

Cases come from the programme's structure export and the France services
list in /work/shared/data (Licence Ouverte 2.0).
"""

from __future__ import annotations

import csv
import time
from datetime import date
from pathlib import Path

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from spp_shared.contracts.types import (
    COMMITMENTS,
    CommitmentNumber,
    Coordinates,
    DepartementCode,
    Email,
    FrenchPhone,
    HttpUrl,
    InseeArrondissementCode,
    InseeCommuneCode,
    NetworkCode,
    OpeningHours,
    Period,
    Postcode,
    RegionCode,
    Siren,
    Siret,
    TimeRange,
    check_coordinates,
    departement_of_commune,
    haversine_km,
    normalize_arrondissement_code,
    normalize_commitment_number,
    normalize_commune_code,
    normalize_departement_code,
    normalize_email,
    normalize_network_code,
    normalize_period,
    normalize_phone,
    normalize_postcode,
    normalize_region_code,
    normalize_siren,
    normalize_siret,
    normalize_url,
    opening_hours_from_texts,
    parse_day_hours,
    period_bounds,
    slugify_network,
    split_arrondissement_code,
)

DATA = Path("/work/shared/data/sites")
FRANCE_SERVICES = DATA / "france_services_liste-fs-20240801.csv"
DAYS_FR = ("h_lundi", "h_mardi", "h_mercredi", "h_jeudi", "h_vendredi", "h_samedi")


def _france_services() -> list[dict[str, str]]:
    if not FRANCE_SERVICES.exists():
        pytest.skip("shared data set not available")
    with FRANCE_SERVICES.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


# -- SIRET / SIREN -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("73282932000074", "73282932000074"),
        ("732 829 320 00074", "73282932000074"),
        ("\u00a0732\u202f829\u00a0320 00074 ", "73282932000074"),
        ("35600000000048", "35600000000048"),  # La Poste: not a Luhn number, still valid
        ("35600000049837", "35600000049837"),
    ],
)
def test_siret_valid(raw: str, expected: str) -> None:
    assert normalize_siret(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("73282932000075", "check digit"),
        ("7328293200007", "14 digits"),
        ("732829320000745", "14 digits"),
        ("7328293200007A", "14 digits"),
        ("", "14 digits"),
        ("35600000000049", "check digit"),
    ],
)
def test_siret_invalid(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize_siret(raw)


def test_siren() -> None:
    assert normalize_siren("732 829 320") == "732829320"
    assert normalize_siren("356000000") == "356000000"
    with pytest.raises(ValueError, match="check digit"):
        normalize_siren("732829321")
    with pytest.raises(ValueError, match="9 digits"):
        normalize_siren("73282932")


def test_siret_siren_pydantic_types() -> None:
    class M(BaseModel):
        siret: Siret
        siren: Siren | None = None

    assert M(siret="732 829 320 00074", siren="732829320").siret == "73282932000074"
    with pytest.raises(ValidationError, match="SIRET check digit is invalid"):
        M(siret="73282932000075")
    with pytest.raises(ValidationError, match="valid string"):
        M.model_validate({"siret": 73282932000074})
    schema = M.model_json_schema()["properties"]["siret"]
    assert schema["type"] == "string"
    assert schema["pattern"] == r"^\d{14}$"


# -- communes, arrondissements, départements, régions ---------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("53130", "53130"),
        ("com53130", "53130"),
        ("COM53130", "53130"),
        (" 01001 ", "01001"),
        ("2A004", "2A004"),
        ("com2A004", "2A004"),
        ("2b033", "2B033"),
        ("97411", "97411"),
        ("97101", "97101"),
        ("97502", "97502"),  # Saint-Pierre-et-Miquelon
        ("97701", "97701"),
        ("97801", "97801"),
        ("98735", "98735"),  # Polynésie française
        ("98818", "98818"),  # Nouvelle-Calédonie
        ("75113", "75113"),  # municipal arrondissement
    ],
)
def test_commune_code_valid(raw: str, expected: str) -> None:
    assert normalize_commune_code(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("20004", "2A or 2B"),
        ("99138", "foreign countries"),
        ("consUS0001", "5 characters"),
        ("5313", "5 characters"),
        ("531300", "5 characters"),
        ("00123", "5 characters"),
        ("96001", "5 characters"),
        ("97901", "5 characters"),
        ("98001", "5 characters"),
        ("2C004", "5 characters"),
        ("dep53", "5 characters"),
        ("", "5 characters"),
    ],
)
def test_commune_code_invalid(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize_commune_code(raw)


@pytest.mark.parametrize(
    ("raw", "commune", "arrondissement"),
    [
        ("arr53130", "53130", None),
        ("arr2A004", "2A004", None),
        ("arr13055-02", "13055", "13202"),
        ("arr13055-16", "13055", "13216"),
        ("arr13055-00", "13055", None),
        ("arr13055-24", "13055", None),  # CEDEX-derived suffix, not an arrondissement
        ("arr75056-13", "75056", "75113"),
        ("arr75056-42", "75056", None),  # 75042 PARIS (CEDEX)
        ("arr75056-004", "75056", "75104"),  # postcode typo 750004 in the export
        ("arr69123-03", "69123", "69383"),
        ("arr69123-21", "69123", None),
        ("53130", "53130", None),
    ],
)
def test_arrondissement_code(raw: str, commune: str, arrondissement: str | None) -> None:
    assert split_arrondissement_code(raw) == (commune, arrondissement)
    assert normalize_arrondissement_code(raw) == (arrondissement or commune)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("arr53130-02", "no municipal arrondissements"),
        ("arr5313", "arrondissement code"),
        ("arr13055-", "arrondissement code"),
        ("arr20004", "2A or 2B"),
        ("", "arrondissement code"),
    ],
)
def test_arrondissement_code_invalid(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize_arrondissement_code(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("dep53", "53"),
        ("53", "53"),
        ("4", "04"),
        ("04", "04"),
        ("dep2A", "2A"),
        ("2b", "2B"),
        ("dep974", "974"),
        ("976", "976"),
        ("dep975", "975"),
        ("dep987", "987"),
        ("95", "95"),
    ],
)
def test_departement_code_valid(raw: str, expected: str) -> None:
    assert normalize_departement_code(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("20", "2A or 2B"),
        ("00", "01-95"),
        ("96", "01-95"),
        ("979", "01-95"),
        ("985", "01-95"),
        ("2C", "01-95"),
        ("", "01-95"),
        ("dep", "01-95"),
        ("530", "01-95"),
    ],
)
def test_departement_code_invalid(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize_departement_code(raw)


@pytest.mark.parametrize(
    ("commune", "departement"),
    [
        ("53130", "53"),
        ("com53130", "53"),
        ("2A004", "2A"),
        ("97411", "974"),
        ("97608", "976"),
        ("98735", "987"),
        ("01001", "01"),
    ],
)
def test_departement_of_commune(commune: str, departement: str) -> None:
    assert departement_of_commune(commune) == departement
    assert normalize_departement_code(departement) == departement


def test_departement_of_commune_invalid() -> None:
    with pytest.raises(ValueError, match="5 characters"):
        departement_of_commune("531")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("reg52", "52"), ("52", "52"), ("reg04", "04"), ("1", "01"), ("94", "94"), ("REG11", "11")],
)
def test_region_code_valid(raw: str, expected: str) -> None:
    assert normalize_region_code(raw) == expected


@pytest.mark.parametrize("raw", ["05", "12", "reg98", "reg97", "consUS", "", "520"])
def test_region_code_invalid(raw: str) -> None:
    with pytest.raises(ValueError, match="INSEE région code"):
        normalize_region_code(raw)


def test_geography_pydantic_types() -> None:
    class Place(BaseModel):
        commune: InseeCommuneCode
        arrondissement: InseeArrondissementCode | None = None
        departement: DepartementCode
        region: RegionCode

    place = Place(commune="com53130", departement="dep53", region="reg52")
    assert (place.commune, place.departement, place.region) == ("53130", "53", "52")
    assert Place(commune="2A004", departement="2A", region="94", arrondissement="arr2A004")
    assert Place(
        commune="13055", arrondissement="arr13055-02", departement="13", region="93"
    ).arrondissement == ("13202")
    with pytest.raises(ValidationError) as info:
        Place(commune="20004", departement="20", region="98")
    errors = {e["loc"][0]: e["msg"] for e in info.value.errors()}
    assert set(errors) == {"commune", "departement", "region"}
    assert "2A or 2B" in errors["commune"]
    schema = Place.model_json_schema()["properties"]
    assert schema["commune"]["type"] == "string"
    assert schema["departement"]["pattern"]


# -- postcode ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("53000", "53000"),
        ("4000", "04000"),  # lost its leading zero, as in the export
        ("1000", "01000"),
        ("04000", "04000"),
        (" 75 001 ", "75001"),
        ("97400", "97400"),
        ("97133", "97133"),
        ("98000", "98000"),
        ("98713", "98713"),
        ("20167", "20167"),
    ],
)
def test_postcode_valid(raw: str, expected: str) -> None:
    assert normalize_postcode(raw) == expected


@pytest.mark.parametrize("raw", ["750004", "186", "47", "0400", "00100", "ABCDE", "", "4000a"])
def test_postcode_invalid(raw: str) -> None:
    with pytest.raises(ValueError, match="postcode must be 5 digits"):
        normalize_postcode(raw)


def test_postcode_type() -> None:
    adapter = TypeAdapter(Postcode)
    assert adapter.validate_python("4000") == "04000"
    with pytest.raises(ValidationError):
        adapter.validate_python("123")


# -- phone ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("04 50 56 87 49", "+33450568749"),
        ("0450568749", "+33450568749"),
        ("+33 4 50 56 87 49", "+33450568749"),
        ("0033 4 50 56 87 49", "+33450568749"),
        ("06 12 34 56 78", "+33612345678"),
        ("01.23.45.67.89", "+33123456789"),
        ("0800 00 00 00", "+33800000000"),
        ("02 62 37 80 39", "+262262378039"),  # La Réunion
        ("02 69 62 55 03", "+262269625503"),  # Mayotte
        ("06 39 69 57 84", "+262639695784"),  # Mayotte mobile
        ("05 94 37 07 19", "+594594370719"),  # Guyane
        ("05 96 53 20 87", "+596596532087"),  # Martinique
        ("0590 12 34 56", "+590590123456"),  # Guadeloupe
        ("+687 27 12 34", "+687271234"),  # Nouvelle-Calédonie
    ],
)
def test_phone_valid(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("12", "not a valid French number"),
        ("01 23", "not a valid French number"),
        ("+44 20 7946 0958", "not a French number"),
        ("+1 202 555 0143", "not a French number"),
        ("abc", "cannot be parsed"),
        ("", "empty"),
        ("04 50 56 87 49 99", "not a valid French number"),
    ],
)
def test_phone_invalid(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize_phone(raw)


def test_phone_type() -> None:
    assert TypeAdapter(FrenchPhone).validate_python("04 50 56 87 49") == "+33450568749"


# -- coordinates ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        (48.0706, -0.7734),  # Laval
        (43.2965, 5.3698),  # Marseille
        (41.9192, 8.7386),  # Ajaccio
        (48.4, -4.8),  # Ouessant
        (16.2650, -61.5510),  # Guadeloupe
        (14.6415, -61.0242),  # Martinique
        (4.9372, -52.3260),  # Cayenne
        (-20.8789, 55.4481),  # Saint-Denis (La Réunion)
        (-12.7806, 45.2279),  # Mamoudzou
        (46.7811, -56.1764),  # Saint-Pierre
        (17.8962, -62.8498),  # Gustavia
        (18.0708, -63.0501),  # Marigot
        (-13.2825, -176.1736),  # Mata-Utu
        (-17.5516, -149.5585),  # Papeete
        (-22.2758, 166.4580),  # Nouméa
    ],
)
def test_coordinates_in_france(lat: float, lon: float) -> None:
    assert check_coordinates(lat, lon) == (lat, lon)
    assert Coordinates(lat=lat, lon=lon).lat == lat


@pytest.mark.parametrize(
    ("lat", "lon", "reason"),
    [
        (51.5074, -0.1278, "outside France"),  # London
        (40.4168, -3.7038, "outside France"),  # Madrid
        (0.0, 0.0, "outside France"),
        (-0.7734, 48.0706, "swapped"),  # Laval, lon/lat
        (91.0, 0.0, "latitude must be within"),
        (float("nan"), 2.0, "finite"),
        (float("inf"), 2.0, "finite"),
    ],
)
def test_coordinates_outside_france(lat: float, lon: float, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_coordinates(lat, lon)


def test_coordinates_model() -> None:
    with pytest.raises(ValidationError, match="outside France"):
        Coordinates(lat=51.5074, lon=-0.1278)
    with pytest.raises(ValidationError):
        Coordinates(lat=100, lon=2)
    laval = Coordinates(lat=48.0706, lon=-0.7734)
    paris = Coordinates(lat=48.8566, lon=2.3522)
    assert laval.distance_km(paris) == pytest.approx(246.5, abs=1)


def test_haversine() -> None:
    assert haversine_km(48.8566, 2.3522, 48.8566, 2.3522) == 0.0
    assert haversine_km(48.8566, 2.3522, 43.2965, 5.3698) == pytest.approx(661, abs=3)
    assert haversine_km(0, 0, 0, 180) == pytest.approx(20015.1, abs=1)


def test_france_services_coordinates_are_in_france() -> None:
    rows = _france_services()
    for row in rows:
        check_coordinates(float(row["latitude"]), float(row["longitude"]))


# -- period --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected", "bounds"),
    [
        ("2024", "2024", (date(2024, 1, 1), date(2024, 12, 31))),
        ("2024-Q1", "2024-Q1", (date(2024, 1, 1), date(2024, 3, 31))),
        ("2024-q2", "2024-Q2", (date(2024, 4, 1), date(2024, 6, 30))),
        ("2023-T4", "2023-Q4", (date(2023, 10, 1), date(2023, 12, 31))),
        ("2024-02", "2024-02", (date(2024, 2, 1), date(2024, 2, 29))),
        ("2023-02", "2023-02", (date(2023, 2, 1), date(2023, 2, 28))),
        (" 2022-12 ", "2022-12", (date(2022, 12, 1), date(2022, 12, 31))),
    ],
)
def test_period_valid(raw: str, expected: str, bounds: tuple[date, date]) -> None:
    assert normalize_period(raw) == expected
    assert period_bounds(raw) == bounds


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("2024-Q5", "YYYY, YYYY-Qn or YYYY-MM"),
        ("2024-Q0", "YYYY, YYYY-Qn or YYYY-MM"),
        ("2024-13", "month must be 01 to 12"),
        ("2024-00", "month must be 01 to 12"),
        ("2024-1", "YYYY, YYYY-Qn or YYYY-MM"),
        ("24", "YYYY, YYYY-Qn or YYYY-MM"),
        ("1850", "between 1900 and 2199"),
        ("2024-01-01", "YYYY, YYYY-Qn or YYYY-MM"),
        ("", "YYYY, YYYY-Qn or YYYY-MM"),
    ],
)
def test_period_invalid(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize_period(raw)
    with pytest.raises(ValueError, match=reason):
        period_bounds(raw)


def test_period_type() -> None:
    adapter = TypeAdapter(Period)
    assert adapter.validate_python("2024-t1") == "2024-Q1"
    with pytest.raises(ValidationError):
        adapter.validate_python("2024-Q9")


# -- commitments ---------------------------------------------------------------


def test_commitments() -> None:
    assert sorted(COMMITMENTS) == list(range(1, 9))
    assert COMMITMENTS[1] == (
        "Dans le respect mutuel, vous êtes accueillis avec bienveillance "
        "et avez le droit à l'erreur"
    )
    assert COMMITMENTS[4] == "Votre demande est traitée dans les délais annoncés"
    assert COMMITMENTS[8] == (
        "Avec vous, nous agissons pour limiter notre impact sur l'environnement"
    )
    assert normalize_commitment_number("3") == 3
    assert normalize_commitment_number(8) == 8
    for bad in ("0", "9", "x", True):
        with pytest.raises(ValueError, match="1 to 8"):
            normalize_commitment_number(bad)
    adapter = TypeAdapter(CommitmentNumber)
    assert adapter.validate_python(4) == 4
    with pytest.raises(ValidationError):
        adapter.validate_python(9)


# -- network code --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("POLICE NATIONALE", "police-nationale"),
        (
            "Ministère de l'Agriculture et de l'Alimentation",
            "ministere-de-l-agriculture-et-de-l-alimentation",
        ),
        ("CAF", "caf"),
        ("  France Travail  ", "france-travail"),
        ("Caisse d'allocations familiales (CAF)", "caisse-d-allocations-familiales-caf"),
        ("Œuvre sociale", "oeuvre-sociale"),
        ("URSSAF / Île-de-France", "urssaf-ile-de-france"),
    ],
)
def test_slugify_network(name: str, slug: str) -> None:
    assert slugify_network(name) == slug
    assert normalize_network_code(slug) == slug


def test_slugify_network_truncates_at_dash() -> None:
    name = "Direction régionale de l'environnement, de l'aménagement et du logement d'Occitanie"
    slug = slugify_network(name)
    assert len(slug) <= 64
    assert slug == "direction-regionale-de-l-environnement-de-l-amenagement-et-du"
    assert normalize_network_code(slug) == slug
    assert len(slugify_network("x" * 80)) == 64


@pytest.mark.parametrize("name", ["", "!!!", "é", "X"])
def test_slugify_network_invalid(name: str) -> None:
    with pytest.raises(ValueError, match="at least 2"):
        slugify_network(name)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("c", "2 to 64"),
        ("a" * 65, "2 to 64"),
        ("police_nationale", "separated by dashes"),
        ("-caf", "separated by dashes"),
        ("caf-", "separated by dashes"),
        ("police--nationale", "separated by dashes"),
        ("ministère", "separated by dashes"),
    ],
)
def test_network_code_invalid(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize_network_code(raw)


def test_network_code_type() -> None:
    adapter = TypeAdapter(NetworkCode)
    assert adapter.validate_python(" CAF ") == "caf"
    with pytest.raises(ValidationError):
        adapter.validate_python("police nationale")


# -- e-mail and URL --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("franceservices@ccpb01.fr", "franceservices@ccpb01.fr"),
        ("Jean.Dupont@CAF.FR", "Jean.Dupont@caf.fr"),
        (" mairie+fs@dourgne.fr ", "mairie+fs@dourgne.fr"),
        ("contact@sous.domaine.gouv.fr", "contact@sous.domaine.gouv.fr"),
        ("a@xn--mairie-3ya.fr", "a@xn--mairie-3ya.fr"),
    ],
)
def test_email_valid(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("france-service@carct.fr - maisondelagglo@carct.fr", "single address"),
        ("jean.dupont", "name@domain.fr"),
        ("@caf.fr", "name@domain.fr"),
        ("jean@", "name@domain.fr"),
        ("jean..dupont@caf.fr", "name part"),
        (".jean@caf.fr", "name part"),
        ("jean@caf", "invalid domain"),
        ("jean@-caf.fr", "invalid domain"),
        ("jean@caf..fr", "invalid domain"),
        ("jean@caf.f", "invalid domain"),
        ("a@b@caf.fr", "name part"),
    ],
)
def test_email_invalid(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize_email(raw)


def test_france_services_emails() -> None:
    rejected = []
    for row in _france_services():
        if row["mail"]:
            try:
                normalize_email(row["mail"])
            except ValueError:
                rejected.append(row["mail"])
    # Only the two cells that hold several addresses are rejected.
    assert len(rejected) == 2
    assert all(" - " in value for value in rejected)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("www.caf.fr", "https://www.caf.fr"),
        ("caf.fr/allocataires", "https://caf.fr/allocataires"),
        ("https://www.caf.fr", "https://www.caf.fr"),
        (
            "HTTP://WWW.Service-Public.FR/particuliers?x=1#a",
            "http://www.service-public.fr/particuliers?x=1#a",
        ),
        ("www.caf.fr:8443/x", "https://www.caf.fr:8443/x"),
        ("//www.caf.fr", "https://www.caf.fr"),
        ("https://rdv.anct.gouv.fr/", "https://rdv.anct.gouv.fr/"),
    ],
)
def test_url_valid(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("ftp://files.caf.fr", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("mailto:contact@caf.fr", "http or https"),
        ("caf", "start with http"),
        ("", "empty"),
        ("https://www.caf .fr", "spaces"),
        ("https://user:pw@caf.fr", "credentials"),
        ("https://", "invalid host"),
        ("https://caf.fr:99999", "malformed"),
    ],
)
def test_url_invalid(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize_url(raw)


def test_email_url_types() -> None:
    class Contact(BaseModel):
        email: Email
        website: HttpUrl

    contact = Contact(email="Jean@CAF.fr", website="www.caf.fr")
    assert contact.model_dump() == {"email": "Jean@caf.fr", "website": "https://www.caf.fr"}
    with pytest.raises(ValidationError, match="http or https"):
        Contact(email="a@caf.fr", website="ftp://caf.fr")


# -- opening hours -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:00 - 12:00 / 13:30 - 17:00", [("09:00", "12:00"), ("13:30", "17:00")]),
        ("13:30 - 17:00", [("13:30", "17:00")]),
        ("", []),
        ("   ", []),
        ("9h00-12h00", [("09:00", "12:00")]),
        ("9h-12h / 14h-16h30", [("09:00", "12:00"), ("14:00", "16:30")]),
        ("09:00-12:00/13:30-17:00", [("09:00", "12:00"), ("13:30", "17:00")]),
        ("13:30 - 17:00 / 09:00 - 12:00", [("09:00", "12:00"), ("13:30", "17:00")]),
        ("8:30 – 12:00", [("08:30", "12:00")]),
        ("09:00 - 12:00 et 14:00 - 17:00", [("09:00", "12:00"), ("14:00", "17:00")]),
        ("14:00 - 24:00", [("14:00", "24:00")]),
        # Overlapping ranges in the France services list are merged.
        ("09:00 - 12:00 / 09:00 - 16:30 / 14:00 - 16:30", [("09:00", "16:30")]),
        ("08:30 - 12:00 / 08:30 - 16:00", [("08:30", "16:00")]),
        ("13:30 - 16:00 / 13:30 - 16:00", [("13:30", "16:00")]),
        ("09:00 - 16:00 / 13:00 - 16:00", [("09:00", "16:00")]),
        # Empty "00:00 - 00:00" placeholders are dropped.
        ("00:00 - 00:00 / 09:00 - 12:00", [("09:00", "12:00")]),
        ("00:00 - 00:00", []),
        # Adjacent ranges are kept apart.
        ("09:00 - 12:00 / 12:00 - 14:00", [("09:00", "12:00"), ("12:00", "14:00")]),
    ],
)
def test_parse_day_hours(text: str, expected: list[tuple[str, str]]) -> None:
    assert parse_day_hours(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("fermé", "cannot read"),
        ("09:00", "cannot read"),
        ("09:00 - ", "cannot read"),
        ("9 - 12", "cannot read"),
        ("12:00 - 09:00", "close before they open"),
        ("25:00 - 26:00", "not a valid time"),
        ("09:60 - 12:00", "not a valid time"),
        ("09:00 - 12:00 / sur rendez-vous", "cannot read"),
    ],
)
def test_parse_day_hours_invalid(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_day_hours(text)


def test_parse_day_hours_returns_a_fresh_list() -> None:
    first = parse_day_hours("09:00 - 12:00")
    first.append(("13:00", "14:00"))
    assert parse_day_hours("09:00 - 12:00") == [("09:00", "12:00")]


def test_france_services_hours_all_parse() -> None:
    rows = _france_services()
    for row in rows:
        hours = opening_hours_from_texts({day.removeprefix("h_"): row[day] for day in DAYS_FR})
        assert hours.sunday is None
        for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday"):
            ranges = getattr(hours, day)
            assert ranges is not None
            assert all(r.opens < r.closes for r in ranges)


def test_time_range() -> None:
    assert TimeRange(opens="09:00", closes="12:00").closes == "12:00"
    assert TimeRange(opens="18:00", closes="24:00").closes == "24:00"
    with pytest.raises(ValidationError, match="must open before it closes"):
        TimeRange(opens="12:00", closes="09:00")
    with pytest.raises(ValidationError, match="must open before it closes"):
        TimeRange(opens="09:00", closes="09:00")
    for bad in ("9:00", "24:30", "12h00", "12:60"):
        with pytest.raises(ValidationError):
            TimeRange(opens=bad, closes="23:00")
    with pytest.raises(ValidationError, match="before 24:00"):
        TimeRange(opens="24:00", closes="24:00")


def test_opening_hours_model() -> None:
    hours = OpeningHours.model_validate(
        {
            "monday": [
                {"opens": "13:30", "closes": "17:00"},
                {"opens": "09:00", "closes": "12:00"},
            ],
            "saturday": [],
        }
    )
    assert hours.monday == [
        TimeRange(opens="09:00", closes="12:00"),
        TimeRange(opens="13:30", closes="17:00"),
    ]
    assert hours.saturday == []
    assert hours.tuesday is None
    with pytest.raises(
        ValidationError, match="tuesday: ranges 09:00-12:00 and 11:00-14:00 overlap"
    ):
        OpeningHours.model_validate(
            {
                "tuesday": [
                    {"opens": "11:00", "closes": "14:00"},
                    {"opens": "09:00", "closes": "12:00"},
                ]
            }
        )
    adjacent = OpeningHours.model_validate(
        {"friday": [{"opens": "09:00", "closes": "12:00"}, {"opens": "12:00", "closes": "13:00"}]}
    )
    assert adjacent.friday is not None
    assert len(adjacent.friday) == 2


def test_opening_hours_from_texts() -> None:
    hours = opening_hours_from_texts(
        {"lundi": "09:00 - 12:00 / 13:30 - 17:00", "Mardi": "", "sunday": None}
    )
    assert hours.monday == [
        TimeRange(opens="09:00", closes="12:00"),
        TimeRange(opens="13:30", closes="17:00"),
    ]
    assert hours.tuesday == []
    assert hours.sunday is None
    with pytest.raises(ValueError, match="wednesday: cannot read"):
        opening_hours_from_texts({"mercredi": "le matin"})
    with pytest.raises(ValueError, match="unknown weekday"):
        opening_hours_from_texts({"funday": ""})


# -- cost: the importer runs the plain functions on 100k rows ---------------------


def test_plain_functions_are_cheap() -> None:
    rows = _france_services()
    start = time.perf_counter()
    for _ in range(3):
        for row in rows:
            normalize_commune_code(row["insee_com"])
            normalize_postcode(row["code_postal"])
            normalize_departement_code(row["insee_dep"])
            if row["telephone"]:
                normalize_phone(row["telephone"])
            for day in DAYS_FR:
                parse_day_hours(row[day])
    # ~8,500 rows x 10 values; generous bound for slow CI machines.
    assert time.perf_counter() - start < 5.0


def test_phone_fast_path_agrees_with_libphonenumber() -> None:
    """Every national number form, fast path or not, gives libphonenumber's answer."""
    import random

    import phonenumbers

    from spp_shared.contracts.types import normalize_phone

    rng = random.Random(20261123)
    samples = [f"0{rng.randrange(10**8, 10**9):09d}" for _ in range(20_000)]
    samples += [
        f"0{p}{rng.randrange(10**6):06d}"
        for p in ("140", "450", "612", "700", "736", "800", "899", "970", "262", "590")
    ]
    for text in samples:
        spaced = " ".join(text[i : i + 2] for i in range(0, 10, 2))
        number = phonenumbers.parse(text, "FR")
        try:
            ours: str | None = normalize_phone(spaced)
        except ValueError:
            ours = None
        if ours is not None and ours.startswith("+33"):
            assert phonenumbers.is_valid_number(number), text
            assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == ours
        elif ours is None:
            assert not (
                phonenumbers.is_valid_number(number)
                and phonenumbers.region_code_for_number(number) == "FR"
            ), text

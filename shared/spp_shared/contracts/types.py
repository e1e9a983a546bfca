"""Common value types of the Services Publics+ platform.

Every value type exists twice:

* a plain function ``normalize_xxx(s: str) -> normalised value`` that raises
  ``ValueError`` with a short English reason (shown verbatim in API errors).
  These are cheap (precompiled regexes, small caches, no pydantic) because
  the bulk importer runs them on 100k rows;
* a pydantic v2 type ``Annotated[str, Field(...), BeforeValidator(normalize_xxx)]``
  so API models accept the same loose input, store the canonical form and
  publish a plain ``string`` JSON schema with the canonical pattern.

Geography follows INSEE's Code officiel géographique (COG): commune codes
are 5 characters (2A/2B in Corsica, 97x overseas départements, 98x overseas
collectivities), département codes 2 or 3 characters, région codes 2 digits.
"""

import calendar
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date
from functools import lru_cache
from itertools import pairwise
from typing import Annotated, Any, Final
from urllib.parse import urlsplit, urlunsplit

import phonenumbers
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from stdnum.fr import siren as _stdnum_siren
from stdnum.fr import siret as _stdnum_siret

__all__ = [
    "COMMITMENTS",
    "DEPARTEMENT_CODES",
    "FRENCH_WEEKDAYS",
    "REGION_CODES",
    "WEEKDAYS",
    "CommitmentNumber",
    "Coordinates",
    "DepartementCode",
    "Email",
    "FrenchPhone",
    "HttpUrl",
    "InseeArrondissementCode",
    "InseeCommuneCode",
    "NetworkCode",
    "OpeningHours",
    "Period",
    "Postcode",
    "RegionCode",
    "Siren",
    "Siret",
    "TimeRange",
    "check_coordinates",
    "check_single_line",
    "check_visible_code",
    "check_visible_name",
    "departement_of_commune",
    "haversine_km",
    "normalize_arrondissement_code",
    "normalize_commitment_number",
    "normalize_commune_code",
    "normalize_departement_code",
    "normalize_email",
    "normalize_network_code",
    "normalize_period",
    "normalize_phone",
    "normalize_postcode",
    "normalize_region_code",
    "normalize_siren",
    "normalize_siret",
    "normalize_url",
    "opening_hours_from_texts",
    "parse_day_hours",
    "period_bounds",
    "slugify_network",
    "split_arrondissement_code",
]

# Spaces of every kind (incl. no-break and narrow no-break spaces) and dots.
_SPACES_RE: Final = re.compile(r"[\s\u00a0\u202f.]+")
_WHITESPACE_RE: Final = re.compile(r"\s")


def _require_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    return value


def _lenient(fn: Callable[[str], Any]) -> Callable[[Any], Any]:
    """Wrap a plain normaliser for use as a pydantic BeforeValidator.

    Non-strings are passed through untouched so that pydantic's own ``str``
    schema reports its standard type error.
    """

    def validator(value: Any) -> Any:
        if isinstance(value, str):
            return fn(value)
        return value

    return validator


# --------------------------------------------------------------------------
# Text: no Trojan Source characters
# --------------------------------------------------------------------------

# Unicode's advice against Trojan Source (UTS #55; CVE-2021-42574): the
# bidirectional controls make a text display in another order than it reads,
# and line or paragraph separators break a text declared single-line (U+0085,
# NEL, is one too): no single-line text holds them (ADR 0021). Names and
# identifiers also refuse the invisible characters, which hide in them (two
# names or codes that look alike, a word that escapes a filter): zero-width
# ones, the soft hyphen, the combining grapheme joiner, the Mongolian vowel
# separator, the invisible operators and Unicode's tag characters. Free text
# (addresses, kinds, reasons) keeps them: the programme's export has a U+200B
# inside a town's name.
_BIDI_CONTROLS: Final = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_SEPARATORS: Final = "\u0085\u2028\u2029"
_INVISIBLE: Final = "\u00ad\u034f\u180e\u200b-\u200d\u2060-\u2064\ufeff\U000e0000-\U000e007f"
_BIDI_RE: Final = re.compile(f"[{_BIDI_CONTROLS}]")
NOT_SINGLE_LINE_RE: Final = re.compile(f"[{_BIDI_CONTROLS}{_SEPARATORS}]")
HIDDEN_RE: Final = re.compile(f"[{_BIDI_CONTROLS}{_SEPARATORS}{_INVISIBLE}]")


def _refuse(s: str, pattern: re.Pattern[str], where: str) -> str:
    found = pattern.search(_require_str(s, "text"))
    if found is None:
        return s
    char = found.group()
    if _BIDI_RE.match(char):
        what = "a bidirectional control"
    elif char in _SEPARATORS:
        what = "a line or paragraph separator"
    else:
        what = "an invisible character"
    raise ValueError(f"contains {what} (U+{ord(char):04X}): not allowed in {where}")


def check_single_line(s: str) -> str:
    """Return ``s`` unless it holds a bidirectional control or a line separator.

    Every single-line text of the contracts; its other control characters
    are refused by their pattern. All these characters are non-printable
    (``str.isprintable``), so a caller may test that first.
    """
    return _refuse(s, NOT_SINGLE_LINE_RE, "single-line text")


def check_visible_name(s: str) -> str:
    """Return ``s`` unless it holds a bidirectional control, a separator or an
    invisible character."""
    return _refuse(s, HIDDEN_RE, "a name")


def check_visible_code(s: str) -> str:
    """:func:`check_visible_name` for identifiers (external codes)."""
    return _refuse(s, HIDDEN_RE, "a code")


# --------------------------------------------------------------------------
# SIRET / SIREN
# --------------------------------------------------------------------------

_SIRET_RE: Final = re.compile(r"\d{14}")
_SIREN_RE: Final = re.compile(r"\d{9}")


def normalize_siret(s: str) -> str:
    """Return the 14-digit SIRET without spaces; checks the Luhn key.

    La Poste's establishments (SIREN 356000000) use a different key; that
    case is handled by :mod:`stdnum.fr.siret`.
    """
    value = _SPACES_RE.sub("", _require_str(s, "SIRET"))
    if not _SIRET_RE.fullmatch(value):
        raise ValueError("SIRET must be 14 digits")
    if not _stdnum_siret.is_valid(value):
        raise ValueError("SIRET check digit is invalid")
    return value


def normalize_siren(s: str) -> str:
    """Return the 9-digit SIREN without spaces; checks the Luhn key."""
    value = _SPACES_RE.sub("", _require_str(s, "SIREN"))
    if not _SIREN_RE.fullmatch(value):
        raise ValueError("SIREN must be 9 digits")
    if not _stdnum_siren.is_valid(value):
        raise ValueError("SIREN check digit is invalid")
    return value


Siret = Annotated[
    str,
    Field(pattern=r"^\d{14}$", examples=["13002526500013"], description="SIRET (14 digits)"),
    BeforeValidator(_lenient(normalize_siret)),
]
Siren = Annotated[
    str,
    Field(pattern=r"^\d{9}$", examples=["130025265"], description="SIREN (9 digits)"),
    BeforeValidator(_lenient(normalize_siren)),
]

# --------------------------------------------------------------------------
# INSEE geography: communes, arrondissements, départements, régions
# --------------------------------------------------------------------------

# Overseas: départements d'outre-mer 971-974 and 976, plus the overseas
# collectivities that the COG numbers like départements (975 Saint-Pierre-et-
# Miquelon, 977 Saint-Barthélemy, 978 Saint-Martin, 984 TAAF, 986 Wallis-et-
# Futuna, 987 Polynésie française, 988 Nouvelle-Calédonie, 989 Clipperton).
_OVERSEAS_DEPARTEMENTS: Final = frozenset(
    {"971", "972", "973", "974", "975", "976", "977", "978", "984", "986", "987", "988", "989"}
)
DEPARTEMENT_CODES: Final[frozenset[str]] = frozenset(
    {f"{n:02d}" for n in range(1, 96) if n != 20} | {"2A", "2B"} | _OVERSEAS_DEPARTEMENTS
)
REGION_CODES: Final[frozenset[str]] = frozenset(
    {"01", "02", "03", "04", "06", "11", "24", "27", "28", "32", "44", "52", "53", "75", "76"}
    | {"84", "93", "94"}
)

# 01-19, 21-95 (20 is not used since 1976), 2A/2B, 97[1-8], 98[4-9].
_COMMUNE_RE: Final = re.compile(
    r"(?:0[1-9]|1\d|2[1-9AB]|[3-8]\d|9[0-5])\d{3}|97[1-8]\d{2}|98[4-9]\d{2}"
)
_COMMUNE_PREFIX_RE: Final = re.compile(r"^com", re.IGNORECASE)
_COMMUNE_HINT: Final = (
    "INSEE commune code must be 5 characters: 2 digits (or 2A/2B) + 3 digits, or 97x/98x + 2 digits"
)


@lru_cache(maxsize=65536)
def normalize_commune_code(s: str) -> str:
    """Return the 5-character INSEE commune code.

    Accepts the ``com`` prefix of the programme's export (``com53130``) and
    lower-case Corsican codes (``2a004``).
    """
    value = _COMMUNE_PREFIX_RE.sub("", _require_str(s, "commune code").strip()).upper()
    if _COMMUNE_RE.fullmatch(value):
        return value
    if len(value) == 5 and value.startswith("99") and value.isdigit():
        raise ValueError("INSEE codes starting with 99 designate foreign countries, not communes")
    if len(value) == 5 and value.startswith("20") and value.isdigit():
        raise ValueError("Corsican commune codes start with 2A or 2B, not 20")
    raise ValueError(_COMMUNE_HINT)


InseeCommuneCode = Annotated[
    str,
    Field(
        pattern=r"^(?:\d{2}|2[AB])\d{3}$",
        examples=["53130", "2A004", "97411"],
        description="INSEE commune code (COG)",
    ),
    BeforeValidator(_lenient(normalize_commune_code)),
]

# Municipal arrondissements (COG type ARM): Paris 75101-75120 (parent 75056),
# Marseille 13201-13216 (parent 13055), Lyon 69381-69389 (parent 69123).
_MUNICIPAL_ARRONDISSEMENTS: Final[Mapping[str, tuple[str, int]]] = {
    "75056": ("751", 20),
    "13055": ("132", 16),
    "69123": ("6938", 9),
}
_ARRONDISSEMENT_RE: Final = re.compile(r"(?:arr)?([0-9AB]{5})(?:-(\d{1,3}))?", re.IGNORECASE)


@lru_cache(maxsize=65536)
def split_arrondissement_code(s: str) -> tuple[str, str | None]:
    """Split the export's "INSEE Arrondissement" into (commune, municipal arrondissement).

    The programme's export writes ``arr<commune>`` for most structures and
    ``arr<commune>-NN`` for Paris, Marseille and Lyon, where ``NN`` comes
    from the postcode (``-02`` for 13002, but also ``-42`` for the CEDEX
    postcode 75042 and ``-00`` when unknown). ``NN`` is therefore mapped to
    the INSEE code of the municipal arrondissement (``arr13055-02`` ->
    ``("13055", "13202")``) only when it is a real arrondissement number;
    otherwise the arrondissement part is ``None``.
    """
    m = _ARRONDISSEMENT_RE.fullmatch(_require_str(s, "arrondissement code").strip())
    if m is None:
        raise ValueError(
            "arrondissement code must be a commune code optionally followed by -NN "
            "(e.g. arr13055-02)"
        )
    commune = normalize_commune_code(m.group(1))
    suffix = m.group(2)
    if suffix is None:
        return commune, None
    city = _MUNICIPAL_ARRONDISSEMENTS.get(commune)
    if city is None:
        raise ValueError(f"commune {commune} has no municipal arrondissements")
    prefix, count = city
    number = int(suffix)
    if not 1 <= number <= count:
        return commune, None
    return commune, f"{prefix}{number:0{5 - len(prefix)}d}"


def normalize_arrondissement_code(s: str) -> str:
    """Return the most precise INSEE code for an export "INSEE Arrondissement".

    ``arr53130`` -> ``53130``; ``arr13055-02`` -> ``13202`` (Marseille 2e,
    a COG ``ARM`` code); ``arr75056-42`` (a CEDEX postcode) and
    ``arr13055-00`` -> the commune itself (``75056``, ``13055``).
    """
    commune, arrondissement = split_arrondissement_code(s)
    return arrondissement or commune


InseeArrondissementCode = Annotated[
    str,
    Field(
        pattern=r"^(?:\d{2}|2[AB])\d{3}$",
        examples=["13202", "75113", "53130"],
        description="INSEE municipal arrondissement (ARM) code, else the commune code",
    ),
    BeforeValidator(_lenient(normalize_arrondissement_code)),
]

_DEPARTEMENT_PREFIX_RE: Final = re.compile(r"^dep", re.IGNORECASE)


@lru_cache(maxsize=1024)
def normalize_departement_code(s: str) -> str:
    """Return the INSEE département code: 01-95 (not 20), 2A, 2B, 971-978, 984-989.

    Accepts the ``dep`` prefix (``dep53``) and a lost leading zero (``4``).
    """
    value = _DEPARTEMENT_PREFIX_RE.sub("", _require_str(s, "département code").strip()).upper()
    if len(value) == 1 and value.isdigit():
        value = "0" + value
    if value in DEPARTEMENT_CODES:
        return value
    if value == "20":
        raise ValueError("département 20 no longer exists: use 2A or 2B")
    raise ValueError(
        "département code must be 01-95, 2A, 2B or an overseas code (971-978, 984-989)"
    )


def departement_of_commune(code: str) -> str:
    """Return the département of an INSEE commune code (3 characters overseas)."""
    commune = normalize_commune_code(code)
    return commune[:3] if commune[:2] in ("97", "98") else commune[:2]


_REGION_PREFIX_RE: Final = re.compile(r"^reg", re.IGNORECASE)


@lru_cache(maxsize=256)
def normalize_region_code(s: str) -> str:
    """Return the 2-digit INSEE région code (accepts the ``reg`` prefix)."""
    value = _REGION_PREFIX_RE.sub("", _require_str(s, "région code").strip())
    if len(value) == 1 and value.isdigit():
        value = "0" + value
    if value in REGION_CODES:
        return value
    raise ValueError("région code must be one of the 18 INSEE région codes (e.g. 11, 52, 94)")


DepartementCode = Annotated[
    str,
    Field(
        pattern=r"^(?:\d{2}|2[AB]|9[78]\d)$",
        examples=["53", "2A", "974"],
        description="INSEE département code (COG)",
    ),
    BeforeValidator(_lenient(normalize_departement_code)),
]
RegionCode = Annotated[
    str,
    Field(pattern=r"^\d{2}$", examples=["52", "11", "04"], description="INSEE région code"),
    BeforeValidator(_lenient(normalize_region_code)),
]

# --------------------------------------------------------------------------
# Postcode
# --------------------------------------------------------------------------

_POSTCODE_RE: Final = re.compile(r"(?!00)\d{5}")


@lru_cache(maxsize=65536)
def normalize_postcode(s: str) -> str:
    """Return a 5-digit French postcode; restores a lost leading zero (``4000``)."""
    value = _SPACES_RE.sub("", _require_str(s, "postcode"))
    if len(value) == 4 and value.isdigit() and value[0] != "0":
        value = "0" + value
    if _POSTCODE_RE.fullmatch(value):
        return value
    raise ValueError("postcode must be 5 digits")


Postcode = Annotated[
    str,
    Field(pattern=r"^\d{5}$", examples=["53000", "04000", "97400"], description="French postcode"),
    BeforeValidator(_lenient(normalize_postcode)),
]

# --------------------------------------------------------------------------
# Phone
# --------------------------------------------------------------------------

# Overseas territories that have their own country calling code but are
# dialled with a French national number (0590..., 0262..., 0639...).
_OVERSEAS_PHONE_REGIONS: Final = ("GP", "MQ", "GF", "RE", "YT", "PM", "BL", "MF")
_FRENCH_PHONE_REGIONS: Final = frozenset({"FR", *_OVERSEAS_PHONE_REGIONS, "WF", "PF", "NC"})
# National numbers (without the 0) that may belong to an overseas territory.
_OVERSEAS_PREFIXES: Final = ("262", "263", "269", "508", "59", "639", "69", "97")
_E164 = phonenumbers.PhoneNumberFormat.E164


def _metropolitan_pattern() -> re.Pattern[str]:
    """Every national-number pattern libphonenumber holds valid for region FR."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region("FR")
    kinds = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "voip", "uan")
    patterns = [
        desc.national_number_pattern
        for desc in (getattr(metadata, kind) for kind in kinds)
        if desc is not None and desc.national_number_pattern
    ]
    return re.compile("|".join(f"(?:{p})" for p in patterns))


# Fast path for the common case (a metropolitan number written nationally):
# the same rules libphonenumber applies, without parsing. The bulk importer
# spent a third of its time in phonenumbers.parse before this.
_METROPOLITAN_RE: Final = _metropolitan_pattern()
_NATIONAL_RE: Final = re.compile(r"0(\d{9})")
_PHONE_SEPARATORS: Final = str.maketrans("", "", " .-\u00a0\u202f")


@lru_cache(maxsize=65536)
def normalize_phone(s: str) -> str:
    """Return a French (metropolitan or overseas) phone number in E.164.

    National numbers are read as French; ``0262 ...``, ``0590 ...`` and the
    like get the overseas calling code (+262, +590...) they really have.
    """
    text = _require_str(s, "phone number").strip()
    if not text:
        raise ValueError("phone number is empty")
    national_match = _NATIONAL_RE.fullmatch(text.translate(_PHONE_SEPARATORS))
    if national_match is not None:
        digits = national_match.group(1)
        if not digits.startswith(_OVERSEAS_PREFIXES) and _METROPOLITAN_RE.fullmatch(digits):
            return "+33" + digits
    try:
        number = phonenumbers.parse(text, "FR")
    except phonenumbers.NumberParseException:
        raise ValueError("phone number cannot be parsed") from None
    national = str(number.national_number)
    if not text.startswith(("+", "00")) and national.startswith(_OVERSEAS_PREFIXES):
        for region in _OVERSEAS_PHONE_REGIONS:
            candidate = phonenumbers.parse(national, region)
            if phonenumbers.is_valid_number_for_region(candidate, region):
                return phonenumbers.format_number(candidate, _E164)
    if not phonenumbers.is_valid_number(number):
        raise ValueError("phone number is not a valid French number")
    if phonenumbers.region_code_for_number(number) not in _FRENCH_PHONE_REGIONS:
        raise ValueError("phone number is not a French number")
    return phonenumbers.format_number(number, _E164)


# No pattern in the schema: national forms ("04 50 56 87 49") are accepted as
# well as E.164 (the OpenAPI's examples said "0969 32 52 52" against an E.164
# pattern). Answers hold the E.164 form.
FrenchPhone = Annotated[
    str,
    Field(
        examples=["+33450568749", "04 50 56 87 49", "0262 37 80 39"],
        description="French phone number, national or E.164; stored and answered in E.164",
    ),
    BeforeValidator(_lenient(normalize_phone)),
]

# --------------------------------------------------------------------------
# Coordinates
# --------------------------------------------------------------------------

# (name, lat_min, lat_max, lon_min, lon_max): generous bounding boxes.
_FRANCE_BOXES: Final[tuple[tuple[str, float, float, float, float], ...]] = (
    ("France métropolitaine", 41.2, 51.2, -5.9, 10.0),
    ("Guadeloupe", 15.7, 16.7, -62.0, -60.8),
    ("Saint-Barthélemy et Saint-Martin", 17.7, 18.3, -63.3, -62.6),
    ("Martinique", 14.3, 15.0, -61.3, -60.7),
    ("Guyane", 2.0, 6.0, -55.0, -51.0),
    ("La Réunion", -21.6, -20.7, 55.0, 56.0),
    ("Mayotte", -13.2, -12.4, 44.8, 45.5),
    ("Saint-Pierre-et-Miquelon", 46.6, 47.3, -56.6, -55.9),
    ("Wallis-et-Futuna", -14.6, -12.9, -178.4, -175.9),
    ("Polynésie française", -28.5, -7.0, -155.5, -133.5),
    ("Nouvelle-Calédonie", -23.5, -17.5, 158.0, 172.5),
)


def _in_france(lat: float, lon: float) -> bool:
    for _, lat_min, lat_max, lon_min, lon_max in _FRANCE_BOXES:
        if lat_min <= lat <= lat_max and lon_min <= lon <= lon_max:
            return True
    return False


def check_coordinates(lat: float, lon: float) -> tuple[float, float]:
    """Return ``(lat, lon)`` as floats if they lie in France (incl. overseas)."""
    try:
        lat_f, lon_f = float(lat), float(lon)
    except (TypeError, ValueError):
        raise ValueError("coordinates must be numbers") from None
    if not (math.isfinite(lat_f) and math.isfinite(lon_f)):
        raise ValueError("coordinates must be finite numbers")
    if not (-90.0 <= lat_f <= 90.0 and -180.0 <= lon_f <= 180.0):
        raise ValueError("latitude must be within ±90 and longitude within ±180")
    if _in_france(lat_f, lon_f):
        return lat_f, lon_f
    if -90.0 <= lon_f <= 90.0 and _in_france(lon_f, lat_f):
        raise ValueError("coordinates are outside France (latitude and longitude swapped?)")
    raise ValueError("coordinates are outside France")


_EARTH_RADIUS_KM: Final = 6371.0088


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres (mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


class Coordinates(BaseModel):
    """WGS 84 coordinates of a place in France (metropolitan or overseas)."""

    model_config = ConfigDict(frozen=True)

    lat: float = Field(ge=-90, le=90, examples=[48.0706], description="latitude (WGS 84)")
    lon: float = Field(ge=-180, le=180, examples=[-0.7734], description="longitude (WGS 84)")

    @model_validator(mode="after")
    def _check_in_france(self) -> "Coordinates":
        check_coordinates(self.lat, self.lon)
        return self

    def distance_km(self, other: "Coordinates") -> float:
        return haversine_km(self.lat, self.lon, other.lat, other.lon)


# --------------------------------------------------------------------------
# Period
# --------------------------------------------------------------------------

_PERIOD_RE: Final = re.compile(r"(\d{4})(?:-(?:([QT])([1-4])|(\d{2})))?", re.IGNORECASE)


@lru_cache(maxsize=4096)
def normalize_period(s: str) -> str:
    """Return a period as ``YYYY``, ``YYYY-Qn`` or ``YYYY-MM``.

    ``2024-q1`` and the French ``2024-T1`` (trimestre) become ``2024-Q1``.
    """
    m = _PERIOD_RE.fullmatch(_require_str(s, "period").strip())
    if m is None:
        raise ValueError("period must be YYYY, YYYY-Qn or YYYY-MM")
    year, _, quarter, month = m.groups()
    if not 1900 <= int(year) <= 2199:
        raise ValueError("period year must be between 1900 and 2199")
    if quarter is not None:
        return f"{year}-Q{quarter}"
    if month is not None:
        if not 1 <= int(month) <= 12:
            raise ValueError("period month must be 01 to 12")
        return f"{year}-{month}"
    return year


@lru_cache(maxsize=4096)
def period_bounds(p: str) -> tuple[date, date]:
    """Return the first and last day (both inclusive) of a period."""
    period = normalize_period(p)
    year = int(period[:4])
    if len(period) == 4:
        return date(year, 1, 1), date(year, 12, 31)
    if period[5] == "Q":
        first_month = 3 * (int(period[6]) - 1) + 1
        last_month = first_month + 2
    else:
        first_month = last_month = int(period[5:7])
    last_day = calendar.monthrange(year, last_month)[1]
    return date(year, first_month, 1), date(year, last_month, last_day)


Period = Annotated[
    str,
    Field(
        pattern=r"^\d{4}(?:-Q[1-4]|-(?:0[1-9]|1[0-2]))?$",
        examples=["2024", "2024-Q1", "2024-03"],
        description="Period: a year, a quarter or a month",
    ),
    BeforeValidator(_lenient(normalize_period)),
]

# --------------------------------------------------------------------------
# Commitments
# --------------------------------------------------------------------------

COMMITMENTS: Final[dict[int, str]] = {
    1: "Dans le respect mutuel, vous êtes accueillis avec bienveillance et avez le droit à l'erreur",  # noqa: E501
    2: "Vous pouvez facilement entrer en contact avec vos services publics",
    3: "Vous bénéficiez d'un accompagnement adapté à votre situation personnelle",
    4: "Votre demande est traitée dans les délais annoncés",
    5: "Vous disposez d'une information claire, simple et accessible",
    6: "Vous avez accès à nos résultats de qualité de service",
    7: "Votre avis est pris en compte pour améliorer le service rendu",
    8: "Avec vous, nous agissons pour limiter notre impact sur l'environnement",
}


def normalize_commitment_number(s: str | int) -> int:
    """Return a commitment number 1..8 (accepts ``"3"`` or ``3``)."""
    try:
        number = int(s)
    except (TypeError, ValueError):
        raise ValueError("commitment number must be an integer from 1 to 8") from None
    if isinstance(s, bool) or number not in COMMITMENTS:
        raise ValueError("commitment number must be an integer from 1 to 8")
    return number


CommitmentNumber = Annotated[
    int, Field(ge=1, le=8, examples=[1, 4], description="Services Publics+ commitment (1-8)")
]

# --------------------------------------------------------------------------
# Network code
# --------------------------------------------------------------------------

_NETWORK_CODE_RE: Final = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_NON_ALNUM_RE: Final = re.compile(r"[^a-z0-9]+")
_LIGATURES: Final = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss"})
NETWORK_CODE_MAX: Final = 64


def normalize_network_code(s: str) -> str:
    """Return a network code: a lower-case slug of 2 to 64 characters."""
    value = _require_str(s, "network code").strip().lower()
    if not 2 <= len(value) <= NETWORK_CODE_MAX:
        raise ValueError("network code must be 2 to 64 characters")
    if not _NETWORK_CODE_RE.fullmatch(value):
        raise ValueError("network code must be lower-case letters and digits separated by dashes")
    return value


@lru_cache(maxsize=4096)
def slugify_network(name: str) -> str:
    """Make a network code from a network name.

    ``"Ministère de l'Agriculture"`` -> ``"ministere-de-l-agriculture"``;
    longer than 64 characters is cut at a dash.
    """
    text = unicodedata.normalize("NFKD", _require_str(name, "network name").translate(_LIGATURES))
    ascii_text = text.encode("ascii", "ignore").decode("ascii").lower()
    slug = _NON_ALNUM_RE.sub("-", ascii_text).strip("-")
    if len(slug) > NETWORK_CODE_MAX:
        cut = slug[: NETWORK_CODE_MAX + 1]
        slug = cut[:NETWORK_CODE_MAX] if cut.endswith("-") else cut.rsplit("-", 1)[0]
        if not slug or len(slug) > NETWORK_CODE_MAX:  # one word longer than 64 characters
            slug = cut[:NETWORK_CODE_MAX]
        slug = slug.rstrip("-")
    if len(slug) < 2:
        raise ValueError("network name must contain at least 2 letters or digits")
    return slug


NetworkCode = Annotated[
    str,
    Field(
        min_length=2,
        max_length=NETWORK_CODE_MAX,
        pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
        examples=["caf", "france-travail", "police-nationale"],
        description="Network code (slug)",
    ),
    BeforeValidator(_lenient(normalize_network_code)),
]

# --------------------------------------------------------------------------
# E-mail and URL
# --------------------------------------------------------------------------

_EMAIL_LOCAL_RE: Final = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
)
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN_RE: Final = re.compile(rf"(?:{_LABEL}\.)+(?:[a-z]{{2,63}}|xn--[a-z0-9-]{{1,59}})")


def _ascii_domain(domain: str) -> str | None:
    domain = domain.lower().rstrip(".")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return domain if len(domain) <= 253 and _DOMAIN_RE.fullmatch(domain) else None


def normalize_email(s: str) -> str:
    """Return the e-mail address with a lower-case domain."""
    value = _require_str(s, "e-mail address").strip()
    if _WHITESPACE_RE.search(value):
        raise ValueError("e-mail address must be a single address without spaces")
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("e-mail address must look like name@domain.fr")
    if len(local) > 64 or not _EMAIL_LOCAL_RE.fullmatch(local):
        raise ValueError("e-mail address has an invalid name part")
    ascii_domain = _ascii_domain(domain)
    if ascii_domain is None:
        raise ValueError("e-mail address has an invalid domain")
    result = f"{local}@{ascii_domain}"
    if len(result) > 254:
        raise ValueError("e-mail address is too long")
    return result


Email = Annotated[
    str,
    Field(max_length=254, examples=["franceservices@ccpb01.fr"], description="E-mail address"),
    BeforeValidator(_lenient(normalize_email)),
]

_HOST_LIKE_RE: Final = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}(?::\d{1,5})?(?:[/?#].*)?",
    re.IGNORECASE | re.DOTALL,
)
_SCHEME_RE: Final = re.compile(r"[a-z][a-z0-9+.-]*:", re.IGNORECASE)


@lru_cache(maxsize=16384)
def normalize_url(s: str) -> str:
    """Return an absolute http(s) URL; ``www.caf.fr`` becomes ``https://www.caf.fr``."""
    value = _require_str(s, "URL").strip()
    if not value:
        raise ValueError("URL is empty")
    if _WHITESPACE_RE.search(value):
        raise ValueError("URL must not contain spaces")
    if "://" in value:
        pass
    elif value.startswith("//"):
        value = "https:" + value
    elif _HOST_LIKE_RE.fullmatch(value):
        value = "https://" + value
    elif _SCHEME_RE.match(value):
        raise ValueError("URL must use http or https")
    else:
        raise ValueError("URL must start with http:// or https://")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError("URL is malformed") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("URL must use http or https")
    if parts.username is not None or parts.password is not None:
        raise ValueError("URL must not contain credentials")
    host = _ascii_domain(parts.hostname or "")
    if host is None:
        if parts.hostname == "localhost":
            host = "localhost"
        else:
            raise ValueError("URL has an invalid host name")
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "", parts.query, parts.fragment))


HttpUrl = Annotated[
    str,
    Field(
        max_length=2048,
        pattern=r"^https?://",
        examples=["https://www.caf.fr"],
        description="http(s) URL",
    ),
    BeforeValidator(_lenient(normalize_url)),
]

# --------------------------------------------------------------------------
# Opening hours
# --------------------------------------------------------------------------

WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
FRENCH_WEEKDAYS: Final[Mapping[str, str]] = {
    "lundi": "monday",
    "mardi": "tuesday",
    "mercredi": "wednesday",
    "jeudi": "thursday",
    "vendredi": "friday",
    "samedi": "saturday",
    "dimanche": "sunday",
}

_HHMM_PATTERN: Final = r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$"


class TimeRange(BaseModel):
    """An opening range within a day, ``opens`` < ``closes`` (``HH:MM``)."""

    model_config = ConfigDict(frozen=True)

    opens: str = Field(pattern=_HHMM_PATTERN, examples=["09:00"])
    closes: str = Field(pattern=_HHMM_PATTERN, examples=["12:00"])

    @model_validator(mode="after")
    def _ordered(self) -> "TimeRange":
        if self.opens == "24:00":
            raise ValueError("opening time must be before 24:00")
        if self.opens >= self.closes:
            raise ValueError(f"range {self.opens}-{self.closes} must open before it closes")
        return self


class OpeningHours(BaseModel):
    """Opening hours per weekday; a missing day is unknown, an empty list is closed."""

    model_config = ConfigDict(frozen=True)

    monday: list[TimeRange] | None = None
    tuesday: list[TimeRange] | None = None
    wednesday: list[TimeRange] | None = None
    thursday: list[TimeRange] | None = None
    friday: list[TimeRange] | None = None
    saturday: list[TimeRange] | None = None
    sunday: list[TimeRange] | None = None

    @field_validator(*WEEKDAYS)
    @classmethod
    def _sorted_without_overlap(
        cls, ranges: list[TimeRange] | None, info: ValidationInfo
    ) -> list[TimeRange] | None:
        if ranges is None:
            return None
        ordered = sorted(ranges, key=lambda r: (r.opens, r.closes))
        for previous, current in pairwise(ordered):
            if current.opens < previous.closes:
                raise ValueError(
                    f"{info.field_name}: ranges {previous.opens}-{previous.closes} and "
                    f"{current.opens}-{current.closes} overlap"
                )
        return ordered


_TIME = r"(\d{1,2})\s*(?::\s*(\d{2})|[hH]\s*(\d{2})?)"
_RANGE_RE: Final = re.compile(rf"\s*{_TIME}\s*(?:-|–|—|à|a)\s*{_TIME}\s*", re.IGNORECASE)
_RANGE_SPLIT_RE: Final = re.compile(r"\s*(?:/|,|;|\bet\b)\s*", re.IGNORECASE)


def _hhmm(hours: str, minutes: str | None) -> str:
    h, m = int(hours), int(minutes or 0)
    if h > 24 or m > 59 or (h == 24 and m):
        raise ValueError(f"{hours}:{minutes or '00'} is not a valid time")
    return f"{h:02d}:{m:02d}"


@lru_cache(maxsize=8192)
def _parse_day_hours(text: str) -> tuple[tuple[str, str], ...]:
    parsed: list[tuple[str, str]] = []
    for part in _RANGE_SPLIT_RE.split(text.strip()):
        if not part:
            continue
        m = _RANGE_RE.fullmatch(part)
        if m is None:
            raise ValueError(f"cannot read opening hours {part!r} (expected HH:MM - HH:MM)")
        opens = _hhmm(m.group(1), m.group(2) or m.group(3))
        closes = _hhmm(m.group(4), m.group(5) or m.group(6))
        if opens == closes:  # "00:00 - 00:00" placeholders of the France services list
            continue
        if opens > closes:
            raise ValueError(f"opening hours {opens}-{closes} close before they open")
        parsed.append((opens, closes))
    parsed.sort()
    merged: list[tuple[str, str]] = []
    for opens, closes in parsed:
        if merged and opens < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], closes))
        else:
            merged.append((opens, closes))
    return tuple(merged)


def parse_day_hours(text: str) -> list[tuple[str, str]]:
    """Parse one day of opening hours as written in the France services list.

    ``"09:00 - 12:00 / 13:30 - 17:00"`` -> ``[("09:00", "12:00"), ("13:30", "17:00")]``.
    Accepts ``9h00-12h00``/``9h-12h``, ignores empty ``00:00 - 00:00``
    placeholders and merges overlapping ranges. An empty text means closed
    (``[]``). Raises ``ValueError`` on anything else.
    """
    return list(_parse_day_hours(_require_str(text, "opening hours")))


def opening_hours_from_texts(days: Mapping[str, str | None]) -> OpeningHours:
    """Build :class:`OpeningHours` from texts keyed by English or French weekday.

    ``{"lundi": "09:00 - 12:00", "mardi": ""}``: missing or ``None`` days stay
    unknown, empty texts mean closed.
    """
    values: dict[str, list[TimeRange]] = {}
    for key, text in days.items():
        day = FRENCH_WEEKDAYS.get(key.lower(), key.lower())
        if day not in WEEKDAYS:
            raise ValueError(f"unknown weekday {key!r}")
        if text is None:
            continue
        try:
            ranges = parse_day_hours(text)
        except ValueError as exc:
            raise ValueError(f"{day}: {exc}") from None
        values[day] = [TimeRange(opens=o, closes=c) for o, c in ranges]
    return OpeningHours.model_validate(values)

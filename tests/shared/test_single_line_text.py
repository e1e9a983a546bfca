"""Trojan Source in every single-line text of the contracts, not only in names (issue 7).

The attack review stored U+202E (right-to-left override) in a site's external
code, kind, address, close reason and in an API key's name and owner. The rule
lives in one place, ``single_line`` (contracts.base) and its check in
contracts.types; names and codes also refuse invisible characters.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from spp_shared.contracts.access import ApiKeyCreate
from spp_shared.contracts.sites import Address, NetworkCreate, SiteClose, SiteCreate, SitePatch
from spp_shared.contracts.types import check_single_line, check_visible_code, check_visible_name

BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2069", "\u200e", "\u061c"]
SEPARATORS = ["\u2028", "\u2029", "\u0085"]
# Refused in names and codes, kept in free text (the export has a U+200B in a town).
INVISIBLE = ["\u200b", "\u200d", "\u2060", "\u00ad", "\u034f", "\u180e", "\U000e0001", "\U000e007f"]
KEY = {"roles": ["service"]}
SITE = {"network": "caf", "external_code": "C1", "name": "Caf"}


def refused(model: type[BaseModel], data: dict[str, Any]) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [e["loc"] for e in caught.value.errors()]


@pytest.mark.parametrize("char", BIDI + SEPARATORS)
def test_every_single_line_text_refuses_bidi_controls_and_separators(char: str) -> None:
    text = f"a{char}b"
    assert refused(ApiKeyCreate, KEY | {"name": text, "owner": text}) == [("name",), ("owner",)]
    assert refused(SiteClose, {"reason": text}) == [("reason",)]
    assert refused(
        Address, {"line": text, "complement": text, "commune_name": text, "country": text}
    ) == [("line",), ("complement",), ("commune_name",), ("country",)]
    assert refused(SiteCreate, SITE | {"kind": text}) == [("kind",)]
    assert refused(SiteCreate, SITE | {"external_code": f"C{char}1"}) == [("external_code",)]
    assert refused(SitePatch, {"external_code": f"C{char}1"}) == [("external_code",)]
    assert refused(ApiKeyCreate, KEY | {"name": "k", "owner": "o", "sites": [f"C{char}1"]}) == [
        ("sites", 0)
    ]
    with pytest.raises(ValueError, match=f"U\\+{ord(char):04X}"):
        check_single_line(text)


@pytest.mark.parametrize("char", INVISIBLE)
def test_names_and_codes_refuse_invisible_characters_free_text_keeps_them(char: str) -> None:
    text = f"a{char}b"
    assert refused(SiteCreate, SITE | {"name": text}) == [("name",)]
    assert refused(SiteCreate, SITE | {"external_code": text}) == [("external_code",)]
    assert refused(NetworkCreate, {"code": "reseau-x", "name": "X", "aliases": [text]}) == [
        ("aliases", 0)
    ]
    for check in (check_visible_name, check_visible_code):
        with pytest.raises(ValueError, match="an invisible character"):
            check(text)
    # Free text: the programme's own export has "BASSE-\u200bTERRE".
    assert Address(commune_name=text, line=text).commune_name == text
    assert ApiKeyCreate.model_validate(KEY | {"name": text, "owner": text}).owner == text
    assert check_single_line(text) == text


def test_plain_text_still_passes() -> None:
    text = "Caf de l’Hérault – accueil « Montpellier » (34) — Œuvre"
    assert SiteCreate.model_validate(SITE | {"name": text, "kind": text}).kind == text
    assert ApiKeyCreate.model_validate(KEY | {"name": text, "owner": text}).name == text

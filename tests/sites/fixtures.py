"""Real France services sites (ANCT list, 2024-08-01, Licence Ouverte 2.0) used as
request bodies, so tests exercise the registry with what real data looks like."""

from __future__ import annotations

from typing import Any


def fs_site(
    external_code: str,
    name: str,
    line: str,
    commune_code: str,
    postcode: str,
    commune_name: str,
    lat: float,
    lon: float,
    phone: str,
    email: str,
) -> dict[str, Any]:
    return {
        "network": "france-services",
        "external_code": external_code,
        "name": name,
        "kind": "France Services",
        "address": {
            "line": line,
            "postcode": postcode,
            "commune_code": commune_code,
            "commune_name": commune_name,
        },
        "coordinates": {"lat": lat, "lon": lon},
        "contact": {"phone": phone, "email": email},
    }


VALSERHONE = fs_site(
    "1",
    "France services de Valserhône",
    "5-9 Rue des Papetiers",
    "01033",
    "01200",
    "Valserhône",
    46.1060711578546,
    5.8260084241619,
    "04 50 56 87 49",
    "franceservices@ccpb01.fr",
)
PONT_DE_VEYLE = fs_site(
    "695",
    "France services multisites de Veyle",
    "10 Rue de la Poste",
    "01306",
    "01290",
    "Pont-de-Veyle",
    46.265412,
    4.887753,
    "03 85 30 83 51",
    "franceservices@cc-laveyle.fr",
)
VICO = fs_site(
    "125",
    "France services La Poste de Vico",
    "Cours Jean Etienne Colonna",
    "2A348",
    "20160",
    "Vico",
    42.1672,
    8.801346,
    "04 95 26 26 52",
    "vico@france-services.gouv.fr",
)
PARIS_12 = fs_site(
    "435",
    "France services Pimms Médiation Paris 12ème - Sud-Est",
    "181 Avenue Daumesnil",
    "75112",
    "75012",
    "Paris 12e",
    48.84049,
    2.392507,
    "01 44 67 27 00",
    "paris-sud-est@pimms.org",
)
PARIS_20 = fs_site(
    "438",
    "France services Pimms Médiation Paris 20ème - Est",
    "18 Rue Ramus",
    "75120",
    "75020",
    "Paris 20e",
    48.86229,
    2.399418,
    "01 44 64 00 62",
    "paris-est@pimms.org",
)
GOURBEYRE = fs_site(
    "799",
    "France services Gourbeyre",
    "Tiers-Lieux de ruelle des Bambous",
    "97109",
    "97113",
    "Gourbeyre",
    15.992374,
    -61.691087,
    "05 90 41 74 97",
    "franceservices.gourbeyre@gmail.com",
)
BRON = fs_site(
    "953",
    "France services Pimms Médiation de Bron",
    "58 Rue Marcel Bramet",
    "69029",
    "69008",
    "Bron",
    45.743278,
    4.921179,
    "06 12 52 14 64",
    "bron@pimmsmediation.fr",
)
LYON_8 = fs_site(
    "657",
    "France services Pimms Médiation Lyon Métropole - Etats-Unis",
    "1 place du 8 mai 1945",
    "69388",
    "69008",
    "Lyon 8e",
    45.730309,
    4.865149,
    "06 18 53 31 63",
    "etats-unis@pimmsmediation.fr",
)

ALL = [VALSERHONE, PONT_DE_VEYLE, VICO, PARIS_12, PARIS_20, GOURBEYRE, BRON, LYON_8]

"""If-Match and If-None-Match as RFC 9110 reads them (§8.8.3, §13.1.1-2)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spp_shared.kit.errors import BadRequest, PreconditionFailed
from spp_shared.kit.etags import check_if_match, entity_tags, not_modified

TAG = '"S1.3"'


@pytest.mark.parametrize(
    ("header", "items"),
    [
        ("*", ["*"]),
        ('"a", W/"b"', ['"a"', 'W/"b"']),
        (' , "a" ,\t', ['"a"']),
        ('"a,b"', ['"a,b"']),
        ("", []),
        ("W/*", None),
        ("abc", None),
        ('"a""b"', None),
        ('W/ "a"', None),
    ],
)
def test_entity_tags(header: str, items: list[str] | None) -> None:
    assert entity_tags(header) == items


@pytest.mark.parametrize("header", ["*", TAG, f'"S1.2", {TAG}'])
def test_if_match_accepts_star_alone_or_the_strong_tag(header: str) -> None:
    check_if_match(header, TAG)


@pytest.mark.parametrize("header", [f"W/{TAG}", '"S1.2"', f'W/"S1.2", W/{TAG}', ""])
def test_if_match_is_a_strong_comparison(header: str) -> None:
    # It was: W/"S1.3" accepted, the W/ dropped before comparing.
    with pytest.raises(PreconditionFailed):
        check_if_match(header, TAG)


@pytest.mark.parametrize("header", ["W/*", '*, "nope"', "S1.3", f"{TAG}; x"])
def test_if_match_that_is_not_the_syntax_is_a_bad_request(header: str) -> None:
    # It was: W/* read as * (200).
    with pytest.raises(BadRequest):
        check_if_match(header, TAG)


def test_if_none_match_keeps_the_weak_comparison() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    assert not_modified(f"W/{TAG}", None, TAG, moment)
    assert not_modified(TAG, None, TAG, moment)
    assert not_modified("*", None, TAG, moment)
    assert not not_modified('W/"S1.2"', None, TAG, moment)

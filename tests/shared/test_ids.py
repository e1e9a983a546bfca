"""Row ids: the ULID layout, sortable by creation time."""

from __future__ import annotations

import time

from spp_shared.kit.ids import is_ulid, new_ulid


def test_ids_sort_by_creation_time() -> None:
    first = new_ulid()
    time.sleep(0.002)
    assert new_ulid() > first


def test_ids_are_26_crockford_characters() -> None:
    ids = {new_ulid() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_ulid(i) for i in ids)


def test_what_is_not_an_id_is_told_apart() -> None:
    valid = new_ulid()
    for text in (valid.lower(), valid[:-1], valid + "0", valid + "\n", "I" * 26, "U" * 26):
        assert not is_ulid(text)

from __future__ import annotations

import time

import pytest

from spp_shared.contracts.permissions import Role
from spp_shared.kit.identity import (
    InvalidAssertion,
    Principal,
    PrincipalKind,
    sign_assertion,
    verify_assertion,
)

KEY = "k" * 40
MANAGER = Principal(
    subject="key-caf-69",
    kind=PrincipalKind.api_key,
    roles=[Role.network_manager],
    scopes=["sites:write"],
    network="caf",
    sites=["01JC0000000000000000000000"],
    request_id="rid-1",
)


def test_round_trip_keeps_every_claim() -> None:
    assert verify_assertion(sign_assertion(MANAGER, KEY), KEY) == MANAGER


def test_expired_assertion_is_refused() -> None:
    token = sign_assertion(MANAGER, KEY, ttl=5, now=time.time() - 60)
    with pytest.raises(InvalidAssertion, match="expired"):
        verify_assertion(token, KEY)


def test_other_key_or_tampering_is_refused() -> None:
    token = sign_assertion(MANAGER, KEY)
    with pytest.raises(InvalidAssertion):
        verify_assertion(token, "another-key-" + "x" * 30)
    header, payload, signature = token.split(".")
    with pytest.raises(InvalidAssertion):
        verify_assertion(f"{header}.{payload}x.{signature}", KEY)
    with pytest.raises(InvalidAssertion):
        verify_assertion("not-a-jwt", KEY)


def test_unsigned_alg_none_is_refused() -> None:
    forged = (
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4Iiwicm9sZXMiOlsicHJvZ3JhbW1lX2FkbWluIl19."
    )
    with pytest.raises(InvalidAssertion):
        verify_assertion(forged, KEY)

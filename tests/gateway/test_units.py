"""Pure pieces of the gateway: route lookup, authentication, settings."""

from __future__ import annotations

import pytest

from spp_gateway.auth import Authenticator, InvalidCredentials
from spp_gateway.routes import ROUTES, RouteTable, route_key
from spp_gateway.settings import GatewaySettings
from spp_shared.kit.identity import PrincipalKind, verify_assertion

KEY = "k" * 40


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/v1/sites", "/v1/sites"),
        ("/v1/sites/", "/v1/sites"),
        ("/v1/sites/1/hours", "/v1/sites"),
        ("/v1", "/v1"),
        ("/", "/"),
    ],
)
def test_route_key(path: str, key: str) -> None:
    assert route_key(path) == key


def test_route_table_rejects_duplicates_and_bad_prefixes() -> None:
    urls = {name: "http://x/" for name in ROUTES}
    table = RouteTable(urls)
    assert table.upstreams["sites"].base_url == "http://x"
    with pytest.raises(ValueError, match="twice"):
        RouteTable(urls, {**ROUTES, "labelling": ("/v1/sites",)})
    with pytest.raises(ValueError, match="two path segments"):
        RouteTable(urls, {**ROUTES, "labelling": ("/v1/labels/x",)})


def test_authenticator() -> None:
    auth = Authenticator(bootstrap_token="secret-token", assertion_key=KEY, cache_seconds=5)
    assert auth.authenticate(None) is None
    principal = auth.authenticate(b"bearer secret-token")
    assert principal is not None
    assert principal.kind is PrincipalKind.bootstrap
    for bad in (b"Bearer other", b"Bearer", b"Basic secret-token", b"secret-token"):
        with pytest.raises(InvalidCredentials):
            auth.authenticate(bad)
    first = auth.assertion(principal, "rid-1")
    assert auth.assertion(principal, "rid-2") == first  # cached
    assert verify_assertion(first.decode(), KEY).request_id is None  # never a stale id


def test_no_bootstrap_token_refuses_every_bearer() -> None:
    auth = Authenticator(bootstrap_token=None, assertion_key=KEY)
    with pytest.raises(InvalidCredentials):
        auth.authenticate(b"Bearer ")


def test_settings_read_the_platform_secrets_without_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPP_BOOTSTRAP_TOKEN", "boot")
    monkeypatch.setenv("SPP_ASSERTION_KEY", "assert-key-" + "k" * 32)
    monkeypatch.setenv("SPP_GATEWAY_SITES_URL", "http://sites:1")
    monkeypatch.setenv("BOOTSTRAP_TOKEN", "wrong")
    settings = GatewaySettings()
    assert settings.bootstrap_token is not None
    assert settings.bootstrap_token.get_secret_value() == "boot"
    assert settings.assertion_key.get_secret_value() == "assert-key-" + "k" * 32
    assert settings.sites_url == "http://sites:1"
    monkeypatch.delenv("SPP_BOOTSTRAP_TOKEN")
    assert GatewaySettings().bootstrap_token is None

"""Pure pieces of the gateway: route lookup, authentication, settings."""

from __future__ import annotations

import pytest

from spp_gateway.app import create_app
from spp_gateway.auth import Authenticator, InvalidCredentials
from spp_gateway.routes import ROUTES, RouteTable, route_key
from spp_gateway.settings import GatewaySettings
from spp_shared.kit.identity import ANONYMOUS, PrincipalKind
from spp_shared.kit.settings import MissingKey
from tests.support import GATEWAY_SIGNER, TEST_KEYS_ENV, TEST_VERIFIER


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


@pytest.mark.anyio
async def test_authenticator() -> None:
    auth = Authenticator(bootstrap_token="secret-token", signer=GATEWAY_SIGNER)
    assert await auth.authenticate(None, None) is ANONYMOUS
    principal = await auth.authenticate(b"bearer secret-token", None)
    assert principal.kind is PrincipalKind.bootstrap
    assert await auth.authenticate(None, b"secret-token") is principal
    bad_ones = [
        (b"Bearer other", None),
        (b"Bearer", None),
        (b"Basic secret-token", None),
        (b"secret-token", None),
        (b"Bearer secret-token", b"secret-token"),  # two credentials
        (b"Bearer spp_abcdefghijkl_" + b"x" * 43, None),  # an API key, but no store
        (b"Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", None),  # a JWT, but no OIDC
    ]
    for authorization, api_key in bad_ones:
        with pytest.raises(InvalidCredentials) as err:
            await auth.authenticate(authorization, api_key)
        assert "secret-token" not in err.value.detail


def test_every_assertion_is_signed_for_its_own_request() -> None:
    auth = Authenticator(bootstrap_token=None, signer=GATEWAY_SIGNER)
    token = auth.assertion(ANONYMOUS, method="GET", path="/v1/sites", request_id="rid-7")
    again = auth.assertion(ANONYMOUS, method="GET", path="/v1/sites", request_id="rid-8")
    assert token != again  # no cache: each names its own request
    assert TEST_VERIFIER.verify(token, method="GET", path="/v1/sites").request_id == "rid-7"


@pytest.mark.anyio
async def test_no_bootstrap_token_refuses_every_bearer() -> None:
    auth = Authenticator(bootstrap_token=None, signer=GATEWAY_SIGNER)
    for token in (b"Bearer ", b"Bearer anything"):
        with pytest.raises(InvalidCredentials):
            await auth.authenticate(token, None)


def test_settings_read_the_platform_secrets_without_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPP_BOOTSTRAP_TOKEN", "boot" * 8)
    monkeypatch.setenv("SPP_GATEWAY_SITES_URL", "http://sites:1")
    monkeypatch.setenv("BOOTSTRAP_TOKEN", "wrong")
    settings = GatewaySettings()
    assert settings.bootstrap_token is not None
    assert settings.bootstrap_token.get_secret_value() == "boot" * 8
    assert settings.signing_key is not None
    assert settings.signing_key.get_secret_value() == TEST_KEYS_ENV["SPP_GATEWAY_SIGNING_KEY"]
    assert settings.sites_url == "http://sites:1"
    monkeypatch.delenv("SPP_BOOTSTRAP_TOKEN")
    assert GatewaySettings().bootstrap_token is None


def test_a_short_bootstrap_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPP_BOOTSTRAP_TOKEN", "short-but-not-32")
    with pytest.raises(ValueError, match="at least 32"):
        GatewaySettings()


def test_the_gateway_will_not_start_without_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPP_GATEWAY_SIGNING_KEY")
    with pytest.raises(MissingKey, match="SPP_GATEWAY_SIGNING_KEY"):
        create_app(GatewaySettings())


def test_the_gateway_database_url_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPP_GATEWAY_DATABASE_URL", "postgresql+asyncpg://gw:hunter2@db/gw")
    settings = GatewaySettings()
    assert settings.database_url.get_secret_value().endswith("hunter2@db/gw")
    assert "hunter2" not in repr(settings)

"""Keys and secrets in the settings: each process its own private key, one
public map for all, no default anywhere, never shown."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError

from spp_shared.kit.keys import (
    PUBLIC_KEYS_ENV,
    InvalidKey,
    generate_private_key_pem,
    signing_key_env,
)
from spp_shared.kit.settings import MissingKey
from spp_sites.app import create_app
from spp_sites.settings import SitesSettings
from tests.support import TEST_KEYS_ENV, TEST_PUBLIC_KEYS


def test_a_service_reads_its_own_key_and_the_shared_public_keys() -> None:
    settings = SitesSettings()
    assert settings.signing_key is not None
    assert settings.signing_key.get_secret_value() == TEST_KEYS_ENV["SPP_SITES_SIGNING_KEY"]
    assert settings.assertion_public_keys == TEST_PUBLIC_KEYS
    assert "PRIVATE" not in repr(settings)


@pytest.mark.parametrize("env", ["SPP_SITES_SIGNING_KEY", PUBLIC_KEYS_ENV])
def test_a_service_will_not_start_without_its_keys(
    monkeypatch: pytest.MonkeyPatch, env: str
) -> None:
    monkeypatch.delenv(env)
    settings = SitesSettings()  # migrations need no key
    with pytest.raises(MissingKey, match=env):
        create_app(settings)


def test_a_service_will_not_start_with_another_services_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its calls would be refused everywhere: say so at start, not at the first call.
    monkeypatch.setenv("SPP_SITES_SIGNING_KEY", TEST_KEYS_ENV[signing_key_env("feedback")])
    with pytest.raises(MissingKey, match="under spp-sites"):
        create_app(SitesSettings())
    monkeypatch.setenv("SPP_SITES_SIGNING_KEY", generate_private_key_pem())
    with pytest.raises(MissingKey, match="under spp-sites"):
        create_app(SitesSettings())


def test_a_service_will_not_start_without_the_gateways_public_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = {k: v for k, v in TEST_PUBLIC_KEYS.items() if k != "spp-gateway"}
    monkeypatch.setenv(PUBLIC_KEYS_ENV, json.dumps(keys))
    with pytest.raises(MissingKey, match="no key for spp-gateway"):
        create_app(SitesSettings())


def test_a_bad_key_is_named_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "-----BEGIN PRIVATE KEY-----\nbm90LWEta2V5\n-----END PRIVATE KEY-----\n"
    monkeypatch.setenv("SPP_SITES_SIGNING_KEY", secret)
    with pytest.raises(InvalidKey, match="SPP_SITES_SIGNING_KEY") as err:
        create_app(SitesSettings())
    assert "bm90LWEta2V5" not in str(err.value)
    monkeypatch.setenv(PUBLIC_KEYS_ENV, '{"spp-gateway": "bm90LWEta2V5"}')
    with pytest.raises(ValidationError) as invalid:
        SitesSettings()
    assert "bm90LWEta2V5" not in str(invalid.value)


def test_the_database_url_is_a_secret(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url = "postgresql+asyncpg://spp:hunter2-password@db:5432/sites"
    monkeypatch.setenv("SPP_SITES_DATABASE_URL", url)
    settings = SitesSettings()
    assert settings.database_url.get_secret_value() == url
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("settings: %s", settings)
    assert "hunter2" not in caplog.text

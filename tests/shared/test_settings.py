"""Platform-wide settings keep one name in every process."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from spp_shared.kit.settings import MissingAssertionKey
from spp_sites.app import create_app
from spp_sites.settings import SitesSettings

KEY = "a-production-like-key-" + "z" * 20


def test_services_read_the_platform_assertion_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPP_ASSERTION_KEY", KEY)
    monkeypatch.setenv("SPP_SITES_ASSERTION_KEY", "ignored-prefixed-name-" + "y" * 20)
    settings = SitesSettings()
    assert settings.assertion_key is not None
    assert settings.assertion_key.get_secret_value() == KEY


def test_a_service_will_not_start_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPP_ASSERTION_KEY")
    settings = SitesSettings()  # migrations need no key
    with pytest.raises(MissingAssertionKey, match="SPP_ASSERTION_KEY"):
        create_app(settings)


def test_short_keys_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPP_ASSERTION_KEY", "short")
    with pytest.raises(ValidationError, match="at least 32"):
        SitesSettings()

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from spp_shared.kit.settings import ServiceSettings


class IndicatorsSettings(ServiceSettings):
    """Settings of the indicators service; environment prefix ``SPP_INDICATORS_``."""

    model_config = SettingsConfigDict(env_prefix="SPP_INDICATORS_", extra="ignore")

    service_name: str = "indicators"
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///./.var/indicators.db")

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from spp_shared.kit.settings import ServiceSettings


class LabellingSettings(ServiceSettings):
    """Settings of the labelling service; environment prefix ``SPP_LABELLING_``."""

    model_config = SettingsConfigDict(env_prefix="SPP_LABELLING_", extra="ignore")

    service_name: str = "labelling"
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///./.var/labelling.db")

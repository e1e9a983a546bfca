from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from spp_shared.kit.settings import ServiceSettings, settings_dependency


class SitesSettings(ServiceSettings):
    """Settings of the sites service; environment prefix ``SPP_SITES_``."""

    model_config = SettingsConfigDict(env_prefix="SPP_SITES_", extra="ignore")

    service_name: str = "sites"
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///./.var/sites.db")
    import_batch_size: int = 2000
    import_max_bytes: int = 512 * 1024 * 1024
    # An import run by the worker (async=true) may take this long: 1.5 million
    # rows wrote at 7,000-15,000 rows/s (bench/README.md).
    import_job_timeout_seconds: float = 3600.0
    lookup_max_items: int = 10_000


SettingsDep = Annotated[SitesSettings, Depends(settings_dependency(SitesSettings))]

"""Settings base shared by every service and the gateway.

Each service subclasses :class:`ServiceSettings` with its own env prefix
(``SPP_SITES_``, ``SPP_FEEDBACK_``...), so one environment can hold the
configuration of the whole platform without collisions.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development-only key: `make run` and the tests use it when nothing is set.
# Production deployments must set SPP_ASSERTION_KEY (see docs/decisions).
DEV_ASSERTION_KEY = "spp-dev-assertion-key-change-me-in-production-0123456789"


class PlatformSettings(BaseSettings):
    """Settings every process reads under the common ``SPP_`` prefix."""

    model_config = SettingsConfigDict(env_prefix="SPP_", extra="ignore")

    assertion_key: SecretStr = Field(
        default=SecretStr(DEV_ASSERTION_KEY),
        description="HMAC key signing the gateway's internal identity assertion.",
    )
    log_level: str = "INFO"
    log_json: bool = True


class ServiceSettings(BaseSettings):
    """Base of each service's settings; subclasses set ``env_prefix``."""

    model_config = SettingsConfigDict(extra="ignore")

    service_name: str = "service"
    database_url: str = "sqlite+aiosqlite:///./.var/service.db"
    database_echo: bool = False
    database_pool_size: int = 10
    assertion_key: SecretStr = Field(default=SecretStr(DEV_ASSERTION_KEY))
    log_level: str = "INFO"
    log_json: bool = True
    access_log: bool = True
    max_page_size: int = 500

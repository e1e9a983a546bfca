"""Gateway settings, read once when the app is built.

Everything is under ``SPP_GATEWAY_`` except the two platform-wide secrets,
``SPP_BOOTSTRAP_TOKEN`` and ``SPP_ASSERTION_KEY``, which keep their exact
names so one environment configures the gateway and the services alike.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from spp_shared.kit.settings import AssertionKey


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SPP_GATEWAY_", extra="ignore", populate_by_name=True
    )

    sites_url: str = "http://127.0.0.1:8001"
    feedback_url: str = "http://127.0.0.1:8002"
    indicators_url: str = "http://127.0.0.1:8003"
    labelling_url: str = "http://127.0.0.1:8004"

    connect_timeout: float = Field(
        default=2.0, gt=0, description="Seconds to open a TCP connection to an upstream."
    )
    read_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds without a byte from the upstream before a 504.",
    )
    bulk_read_timeout: float = Field(
        default=900.0,
        gt=0,
        description="The same for bulk endpoints (paths ending in /import), which answer "
        "only when the whole file is done.",
    )
    pool_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to wait for a free pooled connection."
    )
    pool_size: int = Field(default=200, ge=1, description="Upstream connections, all services.")
    pool_size_per_host: int = Field(default=100, ge=1)
    keepalive_timeout: float = Field(default=30.0, gt=0)
    readiness_timeout: float = Field(default=2.0, gt=0)
    openapi_cache_seconds: float = Field(default=30.0, ge=0)
    assertion_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description=(
            "Reuse a signed assertion for this long (0: sign per request, with the"
            " request id inside). Cached assertions carry no request id; it travels"
            " in X-Request-ID."
        ),
    )

    log_level: str = "INFO"
    log_json: bool = True
    access_log: bool = True

    bootstrap_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SPP_BOOTSTRAP_TOKEN"),
        description="Static admin bearer token for first-run setup; unset disables it.",
    )
    assertion_key: AssertionKey

    def upstream_urls(self) -> dict[str, str]:
        return {
            "sites": self.sites_url,
            "feedback": self.feedback_url,
            "indicators": self.indicators_url,
            "labelling": self.labelling_url,
        }

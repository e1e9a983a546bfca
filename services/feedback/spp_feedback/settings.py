from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from spp_shared.kit.settings import ServiceSettings


class FeedbackSettings(ServiceSettings):
    """Settings of the feedback service; environment prefix ``SPP_FEEDBACK_``."""

    model_config = SettingsConfigDict(env_prefix="SPP_FEEDBACK_", extra="ignore")

    service_name: str = "feedback"
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///./.var/feedback.db")

"""The feedback service (filled by later issues; see ARCHITECTURE.md)."""

from __future__ import annotations

from fastapi import FastAPI

from spp_feedback.settings import FeedbackSettings
from spp_shared.kit.app import create_service_app
from spp_shared.kit.db import Database


def create_app(
    settings: FeedbackSettings | None = None, *, database: Database | None = None
) -> FastAPI:
    return create_service_app(
        settings or FeedbackSettings(),
        title="SP+ feedback",
        description=(
            "Users' experiences, moderation, public answers, satisfaction "
            "ratings, complex-document reports and action plans."
        ),
        database=database,
    )

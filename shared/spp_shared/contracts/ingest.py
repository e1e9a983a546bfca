"""What every bulk import answers: the row-level report (each service adds its own
fields), and the status of an import run in the background."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class ImportIssue(BaseModel):
    line: int = Field(description="1-based line (CSV, header is line 1) or record number (NDJSON)")
    field: str | None = None
    reason: str


class ImportReportBase(BaseModel):
    """The counts and capped issue lists of one import; a service's report extends it."""

    format: str
    dry_run: bool
    committed: bool = Field(description="Whether anything was changed.")
    rows: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    rejected_rows: list[ImportIssue]
    warnings: list[ImportIssue]
    warnings_total: int
    truncated: bool = Field(
        default=False, description="Lists were cut at their maximum length; counts are complete."
    )


class ImportState(StrEnum):
    pending = "pending"  # stored, waiting for a worker
    running = "running"
    done = "done"  # ``status`` and ``result`` hold what a synchronous import answers


class ImportJob(BaseModel):
    """An import run in the background (``async=true``): where it is, then its outcome."""

    id: str
    state: ImportState
    size: int = Field(description="Bytes of the file received.")
    created_at: datetime
    updated_at: datetime
    status: int | None = Field(
        default=None,
        description="Once done: the HTTP status the import would have answered at once "
        "(200 with its report; 409 or 422 with a problem).",
    )
    result: dict[str, Any] | None = Field(
        default=None, description="Once done: the import's report, or the problem."
    )

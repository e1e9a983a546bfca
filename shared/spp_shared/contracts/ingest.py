"""What every bulk import answers: the row-level report (each service adds its own fields)."""

from __future__ import annotations

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

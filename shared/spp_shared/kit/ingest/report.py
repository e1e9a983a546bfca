"""Counts and capped lists of rejected rows and warnings, built while an import runs."""

from __future__ import annotations

from typing import Any, TypeVar

from spp_shared.contracts.ingest import ImportIssue, ImportReportBase

MAX_ISSUES = 1000

R = TypeVar("R", bound=ImportReportBase)


class ReportBuilder:
    """Counts are complete; each issue list keeps its first ``max_issues`` (a
    file of a million bad rows must not answer a million issues)."""

    def __init__(self, fmt: str, *, dry_run: bool, max_issues: int = MAX_ISSUES) -> None:
        self.format = fmt
        self.dry_run = dry_run
        self.max_issues = max_issues
        self.rows = 0
        self.created = 0
        self.updated = 0
        self.unchanged = 0
        self.rejected = 0
        self.warnings_total = 0
        self.rejected_rows: list[ImportIssue] = []
        self.warnings: list[ImportIssue] = []
        self.truncated = False

    def reject(self, line: int, field: str | None, reason: str) -> None:
        self.rejected += 1
        if len(self.rejected_rows) < self.max_issues:
            self.rejected_rows.append(ImportIssue(line=line, field=field, reason=reason))
        else:
            self.truncated = True

    def warn(self, line: int, field: str | None, reason: str) -> None:
        self.warnings_total += 1
        if len(self.warnings) < self.max_issues:
            self.warnings.append(ImportIssue(line=line, field=field, reason=reason))
        else:
            self.truncated = True

    def build(self, model: type[R], *, committed: bool, **extra: Any) -> R:
        """The report as ``model`` (the service's report), with its own ``extra`` fields."""
        return model(
            format=self.format,
            dry_run=self.dry_run,
            committed=committed,
            rows=self.rows,
            created=self.created,
            updated=self.updated,
            unchanged=self.unchanged,
            rejected=self.rejected,
            rejected_rows=self.rejected_rows,
            warnings=self.warnings,
            warnings_total=self.warnings_total,
            truncated=self.truncated,
            **extra,
        )

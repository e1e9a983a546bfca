"""Query and header parameters every API uses the same way (pagination, conditions)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Query

Limit = Annotated[int, Query(ge=1, le=500, description="Page size (1-500).")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]
IfMatch = Annotated[str | None, Header(description="The ETag you last read.")]
IfNoneMatch = Annotated[str | None, Header()]
IfModifiedSince = Annotated[str | None, Header()]

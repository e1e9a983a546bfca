"""Query and header parameters every API uses the same way (pagination, If-Match).

A conditional GET's headers are read by :mod:`spp_shared.kit.conditional`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request

Limit = Annotated[int, Query(ge=1, le=500, description="Page size (1-500).")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]


def field_lines(request: Request, name: str) -> str | None:
    """Every line of header ``name`` as one list (RFC 9110 §5.3), or None.

    Starlette's ``Header()`` reads the first line only: ``If-Match: *`` then
    ``If-Match: "nope"`` was read as ``*`` alone.
    """
    values = request.headers.getlist(name)
    return ", ".join(values) if values else None


async def _if_match(
    request: Request,
    if_match: Annotated[str | None, Header(description="The ETag you last read.")] = None,
) -> str | None:
    return field_lines(request, "if-match")


IfMatch = Annotated[str | None, Depends(_if_match)]

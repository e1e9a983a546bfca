"""Conditional GET (RFC 9110 §13): validators out, 304 when the client's copy is current.

A GET of one resource takes :data:`ConditionalGetDep`; the app factory's
OpenAPI declares its 304 and validators from the If-None-Match parameter
(spp_shared.kit.openapi; an app built otherwise declares :data:`NOT_MODIFIED`)::

    @router.get("/things/{id}", response_model=ThingOut)
    async def get_thing(id: str, session: ReadSessionDep, conditional: ConditionalGetDep):
        thing = await service.get_thing(session, id)
        conditional.check(thing_etag(thing), thing.updated_at)
        return thing_out(thing)

The 200 and the 304 carry the same ETag and Last-Modified. Check after
authorization: a 304 tells that the resource exists and is unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response

from spp_shared.kit.errors import EarlyResponse
from spp_shared.kit.etags import not_modified, validators
from spp_shared.kit.params import field_lines

VALIDATOR_HEADERS: dict[str, Any] = {
    "ETag": {
        "description": "The version of the resource; send it back in If-None-Match "
        "(or If-Match to change it).",
        "schema": {"type": "string"},
    },
    "Last-Modified": {
        "description": "When the resource last changed (HTTP date).",
        "schema": {"type": "string"},
    },
}

NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {
        "description": "Not modified: the copy named by If-None-Match or "
        "If-Modified-Since is current (no body).",
        "headers": VALIDATOR_HEADERS,
    }
}
"""The ``responses=`` of a route taking :data:`ConditionalGetDep`."""


class ConditionalGet:
    """The client's conditions of one GET, and the response its validators go on."""

    __slots__ = ("if_modified_since", "if_none_match", "response")

    def __init__(
        self, response: Response, if_none_match: str | None, if_modified_since: str | None
    ) -> None:
        self.response = response
        self.if_none_match = if_none_match
        self.if_modified_since = if_modified_since

    def check(self, tag: str, last_modified: datetime) -> None:
        """Answer 304 now (:class:`EarlyResponse`) when the client's copy is
        current; else set the validators on the 200 the route goes on to send."""
        headers = validators(tag, last_modified)
        if not_modified(self.if_none_match, self.if_modified_since, tag, last_modified):
            raise EarlyResponse(Response(status_code=304, headers=headers))
        self.response.headers.update(headers)


async def _conditional_get(
    request: Request,
    response: Response,
    if_none_match: Annotated[
        str | None, Header(description="ETags of the copies you hold: 304 if one is current.")
    ] = None,
    if_modified_since: Annotated[
        str | None,
        Header(description="HTTP date of your copy: 304 if the resource is unchanged since."),
    ] = None,
) -> ConditionalGet:
    # Every If-None-Match line is one list (RFC 9110 §5.3); Header() reads the first.
    return ConditionalGet(response, field_lines(request, "if-none-match"), if_modified_since)


ConditionalGetDep = Annotated[ConditionalGet, Depends(_conditional_get)]

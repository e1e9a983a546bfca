"""The kit's request guard (kit/guards.py): control characters in the path or
the query string (400) and encoded request bodies (415) never reach a route."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from spp_shared.kit.errors import PROBLEM_MEDIA_TYPE
from spp_shared.kit.guards import ControlCharacterGuard, has_control_characters
from spp_shared.kit.logging import RequestContextMiddleware

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("raw_path", "query", "refused"),
    [
        (b"/v1/sites/a%00b", b"", True),  # NUL, encoded: PostgreSQL would refuse it as text
        (b"/v1/sites", b"q=%1b%5b31m", True),  # an ANSI escape for a log viewer
        (b"/v1/sites", b"q=a%7Fb", True),  # DEL
        (b"/v1/sites", b"q=a\x01b", True),  # sent raw
        (b"/v1/sites", b"q=line%0Aline%09tab%0D", False),  # newline, tab and CR are text
        (b"/v1/sites", b"q=caf%C3%A9+lyon", False),  # UTF-8, and + for a space
        (b"/v1/sites/caf", b"", False),
    ],
)
def test_which_characters_are_refused(raw_path: bytes, query: bytes, refused: bool) -> None:
    assert has_control_characters(raw_path, query) is refused


class Reached:
    """The app behind the guard: records whether a request got through."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _request(reached: Reached, url: str, **kwargs: Any) -> httpx.Response:
    app = RequestContextMiddleware(ControlCharacterGuard(reached), service="t", access_log=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://test"
    ) as client:
        return await client.request("POST", url, **kwargs)


async def test_a_control_character_is_a_400_that_never_reaches_the_app() -> None:
    reached = Reached()
    resp = await _request(reached, "/v1/sites/a%00b", headers={"x-request-id": "rid-7"})
    assert resp.status_code == 400
    assert resp.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body = resp.json()
    # The path is the very thing refused: escaped in the answer.
    assert body["instance"] == "/v1/sites/a\\x00b"
    assert body["request_id"] == "rid-7"
    assert reached.paths == []


@pytest.mark.parametrize(
    ("encoding", "refused"),
    [
        ("gzip", True),
        ("br", True),
        ("deflate, gzip", True),
        ("identity", False),
        (" Identity ", False),
        ("", False),
    ],
)
async def test_a_body_in_an_encoding_the_app_would_not_decode_is_a_415(
    encoding: str, refused: bool
) -> None:
    reached = Reached()
    resp = await _request(
        reached, "/v1/sites", content=b"{}", headers={"content-encoding": encoding}
    )
    if refused:
        assert resp.status_code == 415
        assert resp.json()["request_id"] == resp.headers["x-request-id"]
        assert reached.paths == []
    else:
        assert resp.status_code == 204
        assert reached.paths == ["/v1/sites"]

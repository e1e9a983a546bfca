"""A bulk request's body, streamed to a temporary file (bounded memory, size limit)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import anyio.to_thread
from fastapi import Request
from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from spp_shared.kit.errors import BadRequest, PayloadTooLarge, ValidationProblem
from spp_shared.kit.ingest.formats import Container, container_of, part_container


@dataclass
class Upload:
    path: Path
    container: Container


BLOCK: Final = 1024 * 1024


def temp_file() -> IO[bytes]:
    """A named temporary file for an upload, kept until the caller deletes it."""
    return tempfile.NamedTemporaryFile(prefix="spp-import-", suffix=".upload", delete=False)


class _Spool:
    """The temporary file, written about :data:`BLOCK` bytes at a time by a worker thread.

    The event loop never waits on the disk, and the thread hand-off is paid
    once a block rather than once a received chunk; chunks are kept as they
    came (no copying into one buffer) and written with one ``writelines``.
    """

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.path = Path(file.name)
        self.pending: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.pending.append(chunk)
        self.size += len(chunk)

    async def flush(self, at_least: int = 1) -> None:
        if self.size >= at_least:
            block, self.pending, self.size = self.pending, [], 0
            await anyio.to_thread.run_sync(self.file.writelines, block)


class ClientGone(BadRequest):
    """Nobody reads this answer; it keeps the log free of a false 500."""

    type_ = "client-disconnected"
    title = "The client disconnected"


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The file is larger than the limit of {max_bytes} bytes.")


def _bad_multipart(reason: str) -> ValidationProblem:
    return ValidationProblem(
        f"The multipart body cannot be read: {reason}.",
        errors=[{"field": "file", "reason": reason}],
    )


class _FilePart:
    """Callbacks of python-multipart's streaming parser: keeps the ``file`` part only."""

    def __init__(self, spool: _Spool) -> None:
        self.spool = spool
        self.found = False
        self.done = False
        self.head = b""
        self.content_type: str | None = None
        self.filename: str | None = None
        self._in_file = False
        self._field = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self._headers = {}
        self._field = self._value = b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"")
        self._in_file = name == b"file" and not self.found
        if self._in_file:
            self.found = True
            ctype = self._headers.get(b"content-type")
            self.content_type = ctype.decode("latin-1") if ctype else None
            filename = params.get(b"filename")
            self.filename = filename.decode("utf-8", "replace") if filename else None

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            chunk = data[start:end]
            if len(self.head) < 64:
                self.head += chunk[:64]
            self.spool.add(chunk)

    def on_part_end(self) -> None:
        if self._in_file:
            self.done = True
        self._in_file = False


@asynccontextmanager
async def spooled_body(request: Request, max_bytes: int) -> AsyncIterator[Upload]:
    """Stream the body (or its ``file`` part) to disk; delete it afterwards."""
    container = container_of(request.headers.get("content-type"))
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise _too_large(max_bytes)
    spool = _Spool(temp_file())
    try:
        with spool.file:
            parser: MultipartParser | None = None
            part: _FilePart | None = None
            if container is Container.multipart:
                _, params = parse_options_header(request.headers.get("content-type", ""))
                boundary = params.get(b"boundary")
                if not boundary:
                    raise _bad_multipart("missing multipart boundary")
                part = _FilePart(spool)
                try:
                    parser = MultipartParser(boundary, part.callbacks())  # type: ignore[arg-type]
                except FormParserError as exc:  # e.g. a boundary over 256 bytes
                    raise _bad_multipart(str(exc)) from None
            received = 0
            try:
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > max_bytes:
                        raise _too_large(max_bytes)
                    if parser is not None:
                        parser.write(chunk)
                    else:
                        spool.add(chunk)
                    await spool.flush(BLOCK)
                if parser is not None:
                    parser.finalize()
            except MultipartParseError as exc:
                raise _bad_multipart(str(exc)) from None
            except ClientDisconnect:
                raise ClientGone("The client left before the upload ended.") from None
            await spool.flush()
            if part is not None:
                if not part.found:
                    raise _bad_multipart("no part named 'file'")
                if not part.done:
                    raise _bad_multipart("the upload is incomplete: no closing boundary")
                container = part_container(part.content_type, part.filename, part.head)
        yield Upload(path=spool.path, container=container)
    finally:
        os.unlink(spool.path)

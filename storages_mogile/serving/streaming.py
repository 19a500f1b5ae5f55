"""Django sending a stored file itself, in constant memory.

The bytes come from the client's reader, which falls through to the next
path when a storage node fails, also in the middle of the file. The first
chunk is read before the response is returned, so a file that no copy can
serve (or whose every copy is damaged) is still answered by the view (503),
never by a server error. Validators (ETag from the MD5, or from the fid,
length and Last-Modified; Last-Modified from the storage node) answer
conditional requests with 304 or 412, a single ``Range`` with 206 or 416.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.utils.cache import get_conditional_response

from storages_mogile.client.nodes import NodeStat
from storages_mogile.serving.files import ServedFile
from storages_mogile.serving.headers import etag_for, last_modified_header
from storages_mogile.serving.options import ServeOptions
from storages_mogile.serving.ranges import (
    ByteRange,
    RangeNotSatisfiable,
    if_range_allows,
    parse_range,
)

logger = logging.getLogger(__name__)

# Bytes the async view reads at a time after the first chunk. Its reader fills
# every read exactly, joining aiohttp's pieces, and Django's ASGI handler cuts
# every piece into 64 KiB messages anyway: 256 KiB cost about a fifth less CPU
# per GiB than 1 MiB (docs/benchmarks.md). The first read stays ``chunk_size``:
# a file that fits in it is checked whole before the answer.
ASYNC_READ = 256 * 1024

# Request headers that cannot be answered without the file's size or date.
_NEED_STAT = ("HTTP_RANGE", "HTTP_IF_UNMODIFIED_SINCE")
# Request headers that need the ETag, which is made from the date when the
# tracker has no MD5 of the file.
_NEED_ETAG = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MATCH")


class _Chunks:
    """The bytes of an open reader, ``chunk_size`` at a time, after the ``first``
    chunk read already; closing closes the reader."""

    def __init__(self, reader: Any, chunk_size: int, first: bytes) -> None:
        self._reader = reader
        self._chunk_size = chunk_size
        self._first = first

    def close(self) -> None:
        self._reader.close()


class ReaderChunks(_Chunks):
    """Chunks for WSGI, read in the server's thread."""

    def __iter__(self) -> Iterator[bytes]:
        if self._first:
            yield self._first
        while chunk := self._reader.read(self._chunk_size):
            yield chunk


class AsyncReaderChunks(_Chunks):
    """Chunks for ASGI, each blocking read in a worker thread.

    Django's ASGI handler would read a synchronous iterator whole into
    memory before sending a byte, so ASGI gets an asynchronous one. Every
    read fills a whole ``chunk_size`` chunk (the reader waits for it), so
    the response costs one thread hop per chunk, not one per socket read.
    """

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._first:
            yield self._first
        read = sync_to_async(self._reader.read, thread_sensitive=False)
        while chunk := await read(self._chunk_size):
            yield chunk


class AsyncNodeChunks(_Chunks):
    """Chunks of the async view, read from an asyncio reader in the event loop.

    The reader is closed in the loop when the body ends or the client goes
    away. Django also closes every response in a worker thread
    (``sync_to_async(response.close)``), which for a body never iterated
    is the only close: there the loop is asked to close the reader.
    """

    def __init__(self, reader: Any, chunk_size: int, first: bytes) -> None:
        super().__init__(reader, chunk_size, first)
        self._loop = asyncio.get_running_loop()
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            if self._first:
                yield self._first
            while chunk := await self._reader.read(self._chunk_size):
                yield chunk
        finally:
            await self._aclose()

    async def _aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._reader.aclose()

    def close(self) -> None:
        if not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._aclose(), self._loop)


def stream_response(
    request: HttpRequest, file: ServedFile, headers: Mapping[str, str], options: ServeOptions
) -> HttpResponseBase:
    """The file, part of it, or a 304/412/416, for a GET or HEAD.

    The storage node is asked for the file's size and date (a HEAD) only
    when the answer depends on them before the body: a HEAD, a range, a
    date condition, or an ETag condition for a file without a recorded MD5
    (its ETag is made from the date). A plain GET takes the date from the
    response the body comes in.
    """
    storage = file.storage
    stat = (
        storage.client.stat(file.key, paths=file.paths, size=file.size)
        if _needs_stat(request, file)
        else None
    )
    answer = answer_before_body(request, file, headers, stat)
    if not isinstance(answer, Body):
        return answer
    reader = storage.open_reader(file.key, file.location, **answer.read_range)
    try:
        first = reader.read(storage.chunk_size)
    except BaseException:
        reader.close()
        raise
    chunks_class = AsyncReaderChunks if isinstance(request, ASGIRequest) else ReaderChunks
    return answer.response(reader, chunks_class(reader, storage.chunk_size, first))


async def astream_response(
    request: HttpRequest, file: ServedFile, headers: Mapping[str, str], options: ServeOptions
) -> HttpResponseBase:
    """``stream_response`` in an event loop: the node is asked, and the body read, with asyncio."""
    storage = file.storage
    stat = (
        await storage.aclient.stat(file.key, paths=file.paths, size=file.size)
        if _needs_stat(request, file)
        else None
    )
    answer = answer_before_body(request, file, headers, stat)
    if not isinstance(answer, Body):
        return answer
    reader = await storage.aopen_reader(file.key, file.location, **answer.read_range)
    try:
        first = await reader.read(storage.chunk_size)
    except BaseException:
        await reader.aclose()
        raise
    return answer.response(reader, AsyncNodeChunks(reader, storage.chunk_size, first))


def answer_before_body(
    request: HttpRequest, file: ServedFile, headers: Mapping[str, str], stat: NodeStat | None
) -> HttpResponseBase | Body:
    """The whole answer when it needs no body (304, 412, 416, HEAD), else the Body to send.

    ``stat`` is the storage node's HEAD when ``_needs_stat()``, else None.
    """
    modified = stat.last_modified if stat is not None else None
    etag = etag_for(file, modified) if stat is not None or file.md5 is not None else None
    validators = {"Accept-Ranges": "bytes", **last_modified_header(modified)}
    if etag is not None:
        validators["ETag"] = etag
    headers = {**headers, **validators}

    template = HttpResponse(headers=headers)
    conditional = get_conditional_response(
        request,
        etag=etag,
        last_modified=int(modified.timestamp()) if modified is not None else None,
        response=template,
    )
    if conditional is not template:
        return conditional
    if stat is not None and request.method == "HEAD":
        template["Content-Length"] = str(stat.length)
        return template

    byte_range = None
    if (
        stat is not None
        and "HTTP_RANGE" in request.META
        and if_range_allows(request, etag, modified)
    ):
        try:
            byte_range = parse_range(request.META["HTTP_RANGE"], stat.length)
        except RangeNotSatisfiable:
            return _not_satisfiable(headers, stat.length)
    return Body(file, headers, byte_range)


def _needs_stat(request: HttpRequest, file: ServedFile) -> bool:
    """Whether answering needs the size or date before the body is opened."""
    meta = request.META
    if request.method == "HEAD" or any(name in meta for name in _NEED_STAT):
        return True
    if file.md5 is None and any(name in meta for name in _NEED_ETAG):
        return True
    # If-None-Match overrides If-Modified-Since, and needs only the ETag.
    return "HTTP_IF_MODIFIED_SINCE" in meta and "HTTP_IF_NONE_MATCH" not in meta


def _not_satisfiable(headers: Mapping[str, str], size: int) -> HttpResponse:
    response = HttpResponse(status=416, headers={"Content-Range": f"bytes */{size}"})
    response["X-Content-Type-Options"] = headers["X-Content-Type-Options"]
    return response


class Body:
    """A 200 with the whole file, or a 206 with ``byte_range`` of it, to be read."""

    def __init__(
        self, file: ServedFile, headers: dict[str, str], byte_range: ByteRange | None
    ) -> None:
        self.file = file
        self.headers = headers
        self.byte_range = byte_range

    @property
    def read_range(self) -> dict[str, int]:
        """The reader's ``offset`` and ``length`` for a range; nothing for the whole file."""
        if self.byte_range is None:
            return {}
        return {"offset": self.byte_range.start, "length": self.byte_range.length}

    def response(self, reader: Any, chunks: _Chunks) -> StreamingHttpResponse:
        """The response sending ``chunks`` of the opened ``reader``, its first chunk read."""
        headers = dict(self.headers)
        if self.byte_range is None:
            status = 200
            if reader.size is not None:
                headers["Content-Length"] = str(reader.size)
        else:
            status = 206
            headers["Content-Length"] = str(self.byte_range.length)
            headers["Content-Range"] = self.byte_range.content_range
        if "Last-Modified" not in headers:
            # A plain GET: the validators of the copy the body comes from.
            headers.update(last_modified_header(reader.last_modified))
            etag = etag_for(self.file, reader.last_modified)
            if etag is not None:
                headers["ETag"] = etag
        return StreamingHttpResponse(chunks, status=status, headers=headers)

"""Storage-node HTTP from asyncio (aiohttp, the ``async`` extra), and the async reader.

:class:`AsyncStorageNodes` is the asyncio twin of :class:`~.nodes.StorageNodes`:
the same timeouts, errors and wary nodes (the rules are
:class:`~.reading.NodeRules`'), over an :class:`aiohttp.ClientSession` of
each event loop. :class:`AsyncNodeReader` is the twin of
:class:`~.files.NodeReader`, driving the same reading rules
(:class:`~.reading.CopyReading`): fall-through to the next copy, mid-stream
resume with a Range, length and MD5 checks.

* Each event loop has its own session and connections; ``await
  nodes.aclose()`` in each loop before it ends closes that loop's. A forked
  child must run a loop of its own (as asyncio requires); there it opens
  connections of its own.
* A wary node is probed by a thread of the process, with a blocking HEAD
  (:mod:`.health`): no event loop has to run for a node to come back.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Generator,
    Iterable,
    Sequence,
)
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

import aiohttp
import urllib3
from aiohttp.client_proto import ResponseHandler

from .core import Steps, arun_steps
from .errors import StorageNodeError
from .nodes import SKIP_SIZE, probe_answers
from .reading import (
    Broken,
    CopyReader,
    Effect,
    NodeRules,
    NodeStat,
    body_start,
    check_put,
    ended_early,
    head_stat,
    range_header,
)

if TYPE_CHECKING:
    from typing_extensions import Self

T = TypeVar("T")
ReadSteps = Generator[Effect, Any, T]

#: What a failing node (or the connection to it) raises in aiohttp.
FAILURES = (aiohttp.ClientError, OSError, asyncio.TimeoutError)

#: Bytes a connection buffers ahead of the reader (docs/benchmarks.md: 1 MiB).
READ_BUFSIZE = 1 << 20


class AsyncNodeBody:
    """An open GET response positioned at the requested start byte.

    ``response`` is ``None`` when the start is at or past the end of the
    file; ``size`` is the whole file's length when the node said it.
    """

    def __init__(
        self,
        url: str,
        response: aiohttp.ClientResponse | None,
        size: int | None,
        last_modified: datetime | None,
    ) -> None:
        self.url = url
        self.response = response
        self.size = size
        self.last_modified = last_modified

    async def read(self, amount: int) -> bytes:
        """Up to ``amount`` bytes, as they arrived; ``b""`` only at the end of the body.

        Fewer bytes than asked cost no copy to gather (the reading rules hold
        back what a check needs, :meth:`.reading.CopyReading.read`).
        """
        if self.response is None:
            return b""
        return await self.response.content.read(amount)

    async def skip(self, count: int) -> None:
        """Read and drop ``count`` bytes (a node that ignored the Range)."""
        while count:
            data = await self.read(min(count, SKIP_SIZE))
            if not data:
                raise ended_early(self.url)
            count -= len(data)

    def release(self) -> None:
        """Give the connection back; one abandoned half-way is closed, so no
        unread bytes can be taken for the next response on it."""
        if self.response is None:
            return
        if self.response.content.at_eof():
            self.response.release()
        else:
            self.response.close()
        self.response = None


class AsyncStorageNodes(NodeRules):
    """GET, HEAD and PUT against storage node URLs from asyncio.

    The settings, errors and wary nodes of :class:`~.nodes.StorageNodes`
    (``order(urls)``, ``wary(url)``, ``rest(url)``, ``backoff``), with
    coroutines for the requests:

    * ``await head(url, last=True)``: a :class:`~.reading.NodeStat`;
    * ``await open(url, start, end, last=True)``: an :class:`AsyncNodeBody`
      from byte ``start`` to ``end`` (inclusive; ``None``: the end), read
      with ``await body.read(n)`` and given back with ``body.release()``;
    * ``await put(url, body, length, failover=False)``: ``body`` an iterable
      or async iterable of bytes, sent with a Content-Length when
      ``length`` is known, else chunked;
    * ``await aclose()``: closes the running event loop's connections.

    A failure is a StorageNodeError (``.url``, ``.status``); a node that
    failed without an answer rests (is wary) as for the blocking nodes.
    """

    def __init__(self, **settings: float) -> None:
        super().__init__(**settings)
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    async def head(self, url: str, *, last: bool = True) -> NodeStat:
        """Length and modification time of the file at ``url``; ``last``: no
        other copy is left to ask (see :mod:`.health`)."""
        async with await self._request("HEAD", url, last=last, read=True) as response:
            return head_stat(url, response.status, response.headers)

    async def open(
        self, url: str, start: int, end: int | None, *, last: bool = True
    ) -> AsyncNodeBody:
        """GET bytes ``start``..``end`` of ``url`` (as :meth:`.StorageNodes.open`)."""
        response = await self._request(
            "GET", url, last=last, read=True, headers=range_header(start, end)
        )
        try:
            begins = body_start(url, response.status, response.headers, start)
            if begins.empty:
                await response.read()
                response.release()
                return AsyncNodeBody(url, None, begins.size, begins.last_modified)
            body = AsyncNodeBody(url, response, begins.size, begins.last_modified)
            await body.skip(begins.skip)
            return body
        except BaseException as exc:
            response.close()
            if isinstance(exc, FAILURES):
                raise self.failed("GET", url, exc) from exc
            raise

    async def put(
        self,
        url: str,
        body: Iterable[bytes] | AsyncIterable[bytes],
        length: int | None,
        *,
        failover: bool = False,
    ) -> None:
        """Stream ``body`` to ``url``; any 2xx answer is success.

        ``failover``: the caller has another destination, so a node that
        takes no byte for ``progress_timeout`` is given up (the last one
        left gets ``http_timeout``). An error raised by ``body`` itself
        propagates as itself: the node is not blamed for it.
        """
        headers = {"Content-Length": str(length)} if length is not None else {}
        response = await self._request(
            "PUT", url, last=not failover, feed=_Feed(body), headers=headers
        )
        async with response:
            try:
                answer = await response.read()
            except FAILURES as exc:
                raise self.failed("PUT", url, exc) from exc
        check_put(url, response.status, answer)

    async def aclose(self) -> None:
        """Close the running event loop's connections; later requests open new ones."""
        session = self._sessions_here().pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()

    async def await_answer(self, node: str) -> bool:
        """Wait a moment for ``node`` to answer its probe, in a thread (the
        probe's event is a threading one; the wait is short and rare)."""
        return await asyncio.to_thread(self.health.await_answer, node)

    async def _request(
        self,
        method: str,
        url: str,
        *,
        last: bool,
        read: bool = False,
        feed: _Feed | None = None,
        headers: dict[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        """Send a request and get its answer's head; the body is the caller's
        to read. ``feed``: the upload's body, watched for progress."""
        timeouts = await arun_steps(Steps(self.admit(method, url, last=last, read=read)), self)
        sending = self._session().request(
            method,
            url,
            data=feed,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=timeouts.connect, sock_read=timeouts.silence
            ),
        )
        try:
            response = await (sending if feed is None else feed.watch(sending, timeouts.silence))
        except FAILURES as exc:
            if feed is not None and feed.error is not None:
                raise feed.error from None  # the caller's body failed, not the node
            raise self.failed(method, url, exc) from exc
        self.answered(url)
        return response

    def _session(self) -> aiohttp.ClientSession:
        """The running event loop's session (a new one the first time)."""
        loop = asyncio.get_running_loop()
        sessions = self._sessions_here()
        session = sessions.get(loop)
        if session is None or session.closed:
            session = sessions[loop] = aiohttp.ClientSession(
                connector=_Connector(limit=0),
                auto_decompress=False,
                read_bufsize=READ_BUFSIZE,
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return session

    def _sessions_here(self) -> dict[asyncio.AbstractEventLoop, aiohttp.ClientSession]:
        """This process's sessions, forgetting those of closed loops.

        A forked child drops the parent's without closing them (that would
        shut sockets the parent still uses).
        """
        with self._lock:
            if self._pid != os.getpid():
                self._sessions, self._pid = {}, os.getpid()
            for closed in [loop for loop in self._sessions if loop.is_closed()]:
                self._sessions.pop(closed).detach()
            return self._sessions

    def _probe(self, url: str) -> bool:
        """Whether the node of ``url`` answers a HEAD of it (blocking, in the
        probe thread; a pool of its own, so no event loop is needed)."""
        with urllib3.PoolManager(num_pools=1) as http:
            return probe_answers(http, url, self.connect_timeout, self.progress_timeout)


class _Handler(ResponseHandler):
    """aiohttp's connection protocol, closing a connection with unsent bytes at once.

    An upload given up on a node that takes nothing would otherwise hold
    its socket until the node reads the rest (a transport's close waits
    for its buffer to be sent).
    """

    def close(self) -> None:
        if self.transport is not None and self.transport.get_write_buffer_size():
            self.abort()
        else:
            super().close()


class _Connector(aiohttp.TCPConnector):
    """aiohttp's TCP connector, with :class:`_Handler` connections."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._factory = cast(
            "functools.partial[ResponseHandler]", functools.partial(_Handler, loop=self._loop)
        )


class _Feed:
    """An upload's body for aiohttp, and the watch on its progress.

    aiohttp asks for the next chunk once the last one was taken by the
    socket, so the time from giving a chunk until it is asked for the next
    is how long the node has taken nothing; the time the caller's body
    takes to make a chunk is not counted (aiohttp's own read timeout starts
    only after the body). An error raised by the caller's body is kept in
    ``error``.
    """

    def __init__(self, body: Iterable[bytes] | AsyncIterable[bytes]) -> None:
        self._body = body
        self.error: BaseException | None = None
        self._moved: float | None = None  # when a chunk was given; None while none is waiting
        self._sent = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            if isinstance(self._body, AsyncIterable):
                async for chunk in self._body:
                    self._moved = time.monotonic()
                    yield chunk
                    self._moved = None  # taken: a slow body is not the node's silence
            else:
                for chunk in self._body:
                    self._moved = time.monotonic()
                    yield chunk
        except Exception as exc:
            self.error = exc
            raise
        self._sent = True

    async def watch(self, request: Awaitable[T], silence: float) -> T:
        """``await request``; TimeoutError when the node takes no byte of the
        body for ``silence`` seconds."""
        task = asyncio.ensure_future(request)
        try:
            while True:
                # Once the body is sent, aiohttp's read timeout watches the answer.
                left = None if self._sent else self._left(silence)
                done, _ = await asyncio.wait({task}, timeout=left)
                if done:
                    return task.result()
                if not self._sent and self._left(silence) == 0:
                    raise TimeoutError(f"the node took no byte for {silence:g} s")
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def _left(self, silence: float) -> float:
        """Seconds the node has left to take the next chunk of the body (all of
        ``silence`` before the body starts, connecting is the connect timeout's,
        and while the body makes its next chunk)."""
        if self._moved is None:
            return silence
        return max(0.0, silence - (time.monotonic() - self._moved))


class AsyncNodeReader(CopyReader):
    """A stored file, streamed from the first copy that answers, in asyncio.

    The arguments and rules of :class:`~.files.NodeReader` (the rules are
    :class:`~.reading.CopyReading`'s): copies in the given order (wary
    nodes last), fall-through before the first byte, mid-stream resume at
    the next copy with a Range, the length and MD5 checks, ``on_damaged``.
    ``await reader.open()`` opens the first copy that answers (NoPathsError
    when none does; the first read does it otherwise); ``await
    reader.read(n)`` gives ``n`` bytes (all with -1; fewer only at the
    end); ``async for chunk in reader`` gives pieces of up to
    ``chunk_size``, as they arrive; ``await reader.aclose()`` (or the end
    of an ``async with`` block) gives the connection back. The arguments and the attributes ``url``, ``size``
    and ``last_modified`` are :class:`.reading.CopyReader`'s.
    """

    def __init__(self, nodes: AsyncStorageNodes, paths: Sequence[str], **options: Any) -> None:
        super().__init__(nodes, paths, **options)
        self.closed = False
        self._transport = _AsyncBodyTransport(nodes)

    async def open(self) -> None:
        """Open the first copy that answers, unless one is open or was read from."""
        if not self._reading.holding and self._reading.url is None:
            await self._run(self._reading.open())

    async def read(self, size: int = -1) -> bytes:
        """``size`` bytes (the rest with -1), fewer only at the end, as a file's
        ``read(n)``; a cancelled read hands out none of them.

        The rest of a whole file that does not match its MD5 is read again
        from the next copy (see :meth:`.NodeReader.readall`).
        """
        if size < 0:
            return await self._run(self._reading.read_all(self.chunk_size))
        return await self._run(self._reading.fill(size))

    def __aiter__(self) -> AsyncNodeReader:
        return self

    async def __anext__(self) -> bytes:
        data = await self._run(self._reading.read(self.chunk_size))
        if not data:
            raise StopAsyncIteration
        return data

    async def aclose(self) -> None:
        """Give the storage node connection back (closed if the body was left unread)."""
        if not self.closed:
            await self._run(self._reading.release())
            self.closed = True

    async def __aenter__(self) -> Self:
        try:
            await self.open()
        except BaseException:  # NoPathsError, or a task cancelled while a node answers
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _run(self, steps: ReadSteps[T]) -> T:
        """Drive the reading rules' ``steps`` over this reader's storage nodes."""
        if self.closed:
            raise ValueError(f"read of key {self.key!r} from a closed reader")
        mark = self._reading.mark()
        try:
            return await arun_steps(Steps(steps), self._transport)
        except asyncio.CancelledError:
            # Bytes it received were handed out to no one: the next read
            # reopens where this one started, else they would be skipped
            # (and the MD5 check lost, its digest having taken them).
            await arun_steps(Steps(self._reading.back_to(mark)), self._transport)
            raise


class _AsyncBodyTransport:
    """The asyncio transport of an :class:`AsyncNodeReader`: the body it holds open."""

    def __init__(self, nodes: AsyncStorageNodes) -> None:
        self._nodes = nodes
        self._body: AsyncNodeBody | None = None

    async def open(self, url: str, start: int, end: int | None, *, last: bool) -> Any:
        """The body of ``url`` from ``start``, or why the attempt failed."""
        try:
            self._body = await self._nodes.open(url, start, end, last=last)
        except StorageNodeError as exc:
            return Broken.of(exc)
        return self._body

    async def receive(self, amount: int) -> bytes | Broken:
        assert self._body is not None
        try:
            return await self._body.read(amount)
        except FAILURES as exc:
            return Broken.of(exc)

    async def release(self) -> None:
        if self._body is not None:
            self._body.release()
            self._body = None

"""HTTP to MogileFS storage nodes (mogstored, or any WebDAV-ish server).

Every request goes through one shared :class:`urllib3.PoolManager`, without
urllib3's own retries: the client decides where to go next (another
destination for an upload, another replica for a read). A read from a
node that moves no byte for ``progress_timeout`` seconds is given up; so is
an upload when the caller has another destination (``failover=True``),
while the last destination left is waited for up to ``http_timeout``. A
node that failed without an answer (refused, reset, silent) becomes wary
(:mod:`.health`) until it answers a probe: tried last, and not at all
while the probe waits, so a hung node holds only the requests under way
when it stopped. The pool belongs to
the process that made it: a forked child gets a new one, so parent and
child never read each other's responses from a shared keep-alive socket.
"""

from __future__ import annotations

import http.client
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import IO
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import HTTPError

from .core import Steps, run_steps
from .errors import StorageNodeError
from .reading import (
    NodeRules,
    NodeStat,
    Timeouts,
    body_start,
    check_put,
    ended_early,
    head_stat,
    range_header,
)

__all__ = ["SKIP_SIZE", "NodeBody", "NodeStat", "StorageNodes", "probe_answers"]

SKIP_SIZE = 1 << 20
# The client picks the next destination or replica itself: urllib3 must not retry.
_NO_RETRIES = urllib3.Retry(total=False, redirect=0)


@dataclass
class NodeBody:
    """An open GET response positioned at the requested start byte.

    ``response`` is ``None`` when the start is at or past the end of the
    file (the node answered 416, or the file is shorter); ``size`` is the
    whole file's length when the node said it.
    """

    url: str
    response: urllib3.BaseHTTPResponse | None
    size: int | None
    last_modified: datetime | None

    def read(self, amount: int) -> bytes:
        """``amount`` bytes, fewer only at the end of the body; ``b""`` there.

        Whole chunks (not what one socket read gives) keep the number of
        calls, and of thread hops for an ASGI response, low; read without
        content decoding, each chunk is filled in place, with no copy. A
        connection closed early gives the bytes that arrived, and the error
        with the next read.
        """
        if self.response is None:
            return b""
        return self.response.read(amount, decode_content=False)

    def release(self) -> None:
        """Give the connection back to the pool.

        A body read to its end leaves a clean keep-alive connection; one
        abandoned half-way is closed first, so no unread bytes can be taken
        for the next response on it.
        """
        if self.response is None:
            return
        if self.response.length_remaining != 0:
            self.response.close()
        self.response.release_conn()
        self.response = None


class StorageNodes(NodeRules):
    """GET, HEAD and PUT against storage node URLs, blocking (urllib3).

    The settings (timeouts, ``backoff``), and the wary nodes that
    :meth:`order` puts last and no request goes to while they hang, are
    :class:`.reading.NodeRules`'.
    """

    def __init__(self, http: urllib3.PoolManager, **settings: float) -> None:
        super().__init__(**settings)
        self._http = http
        self._pid = os.getpid()
        self._lock = threading.Lock()

    @property
    def http(self) -> urllib3.PoolManager:
        """This process's pool: in a forked child, a new one like the parent's.

        The parent's connections are left alone (closing them here would
        shut sockets the parent still uses); the child only drops its
        references.
        """
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    parent = self._http
                    self._http = urllib3.PoolManager(
                        headers=parent.headers, **parent.connection_pool_kw
                    )
                    self._pid = os.getpid()
        return self._http

    def close(self) -> None:
        """Close this process's pooled connections and forget the wary nodes."""
        self.http.clear()
        self.health.close()

    def put(
        self, url: str, body: Iterable[bytes], length: int | None, *, failover: bool = False
    ) -> None:
        """Stream ``body`` to ``url``; any 2xx answer is success.

        With a known ``length`` the request carries a Content-Length, without
        one it is sent chunked (mogstored accepts both). ``failover``: the
        caller has another destination (see :meth:`timeout`).
        """
        headers = {"Content-Length": str(length)} if length is not None else {}
        response = self._request(
            "PUT", url, last=not failover, body=body, headers=headers, preload_content=True
        )
        check_put(url, response.status, response.data)

    def put_file(
        self, url: str, file: IO[bytes], offset: int, count: int, *, failover: bool = False
    ) -> int:
        """PUT ``count`` bytes of a regular file from ``offset`` to an ``http://`` URL
        with the kernel's sendfile.

        A connection of its own (urllib3 gives no access to its socket):
        worth it for a file of more than a chunk. Returns the bytes sent;
        fewer than ``count`` (the file shrank) abandons the request without
        waiting for an answer.
        """
        timeout = self._admit("PUT", url, last=not failover)
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(
            parts.hostname or "", parts.port or 80, timeout=self.connect_timeout
        )
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.putrequest("PUT", target, skip_accept_encoding=True)
            connection.putheader("Content-Length", str(count))
            connection.endheaders()
            assert connection.sock is not None
            connection.sock.settimeout(timeout.silence)
            sent = connection.sock.sendfile(file, offset, count) if count else 0
            if sent == count:
                response = connection.getresponse()
                body = response.read()
                self.answered(url)
                check_put(url, response.status, body)
            return sent
        except (OSError, http.client.HTTPException) as exc:
            self.rest(url)
            raise StorageNodeError(f"PUT {url} failed: {exc}", url=url) from exc
        finally:
            connection.close()

    def head(self, url: str, *, last: bool = True) -> NodeStat:
        """Length and modification time of the file at ``url``; ``last``: no
        other copy is left to ask (see :mod:`.health`)."""
        response = self._request("HEAD", url, last=last, read=True, preload_content=True)
        return head_stat(url, response.status, response.headers)

    def open(self, url: str, start: int, end: int | None, *, last: bool = True) -> NodeBody:
        """GET bytes ``start``..``end`` (inclusive; ``None``: to the end) of ``url``.

        A node that ignores the Range header and sends the whole file is
        handled by skipping to ``start``. The body's reads give up after
        ``progress_timeout`` seconds of silence. ``last``: no other copy is
        left to read (see :mod:`.health`).
        """
        response = self._request(
            "GET",
            url,
            last=last,
            read=True,
            headers=range_header(start, end),
            preload_content=False,
        )
        try:
            return self._body(url, response, start)
        except BaseException as exc:
            response.close()
            response.release_conn()
            if isinstance(exc, (HTTPError, OSError)):
                self.rest(url)
                raise StorageNodeError(f"GET {url} failed: {exc}", url=url) from exc
            raise

    def _body(self, url: str, response: urllib3.BaseHTTPResponse, start: int) -> NodeBody:
        begins = body_start(url, response.status, response.headers, start)
        if begins.empty:
            response.drain_conn()
            response.release_conn()
            return NodeBody(url, None, begins.size, begins.last_modified)
        _skip(response, begins.skip, url)
        return NodeBody(url, response, begins.size, begins.last_modified)

    def _request(
        self,
        method: str,
        url: str,
        *,
        last: bool,
        preload_content: bool,
        read: bool = False,
        body: Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> urllib3.BaseHTTPResponse:
        timeouts = self._admit(method, url, last=last, read=read)
        try:
            response = self.http.request(
                method,
                url,
                body=body,
                headers=headers,
                preload_content=preload_content,
                retries=_NO_RETRIES,
                redirect=False,
                timeout=urllib3.Timeout(connect=timeouts.connect, read=timeouts.silence),
            )
        except (HTTPError, OSError) as exc:
            self.rest(url)
            raise StorageNodeError(f"{method} {url} failed: {exc}", url=url) from exc
        self.answered(url)
        return response

    def _admit(self, method: str, url: str, *, last: bool, read: bool = False) -> Timeouts:
        """The timeouts of a request to ``url`` (:meth:`.NodeRules.admit`)."""
        return run_steps(Steps(self.admit(method, url, last=last, read=read)), self)

    def await_answer(self, node: str) -> bool:
        """Wait a moment for ``node`` to answer its probe (:class:`.reading.AwaitAnswer`)."""
        return self.health.await_answer(node)

    def _probe(self, url: str) -> bool:
        """Whether the node of ``url`` answers a HEAD of it, whatever the status."""
        return probe_answers(self.http, url, self.connect_timeout, self.progress_timeout)


def probe_answers(
    http: urllib3.PoolManager, url: str, connect_timeout: float, progress_timeout: float
) -> bool:
    """Whether the node of ``url`` answers a HEAD of it through ``http``, whatever the status."""
    try:
        http.request(
            "HEAD",
            url,
            retries=_NO_RETRIES,
            redirect=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=progress_timeout),
        )
    except (HTTPError, OSError):
        return False
    return True


def _skip(response: urllib3.BaseHTTPResponse, count: int, url: str) -> None:
    """Read and drop ``count`` bytes of ``response``."""
    while count:
        data = response.read1(min(count, SKIP_SIZE))
        if not data:
            raise ended_early(url)
        count -= len(data)

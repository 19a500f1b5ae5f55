"""The rules of storage-node requests and of reading a file from its copies,
written once and without I/O.

As :mod:`.core` does for trackers, the rules are generators that yield what
they need done and are sent back what came of it; the blocking
:class:`~.nodes.StorageNodes` and :class:`~.files.NodeReader` and the
asyncio :class:`~.aionodes.AsyncStorageNodes` and
:class:`~.aionodes.AsyncNodeReader` drive them (``effect.via(transport)``).
Their effects:

* :class:`AwaitAnswer`: wait a moment for a hanging node to answer its
  probe; answered with whether it did.
* :class:`Open`: GET a byte range of a copy; answered with the open body
  (anything with ``size`` and ``last_modified``) or :class:`Broken`.
* :class:`Receive`: read from the open body; answered with the bytes
  (``b""`` at its end) or :class:`Broken`.
* :class:`Release`: give the open body's connection back (or close it).

The rules of a node (:class:`NodeRules`): a node that failed without an
answer is wary (:mod:`.health`), tried last; no request is sent to it while
it hangs, but one whose last copy or destination is there first waits for
it to answer its probe. A read gives a silent node up after the progress
timeout, and so does an upload with another destination left; the upload to
the last destination waits ``http_timeout``.

The rules of a read (:class:`CopyReading`): copies are tried in order; one
that refuses, answers non-2xx, holds another length than the file's or
is on a hanging node is dropped before the first byte, and one that breaks
or stays silent mid-stream is dropped (its node rested) and reading goes on
at the next copy from the position reached, with a Range. A body that ends
before the file's length moves on the same way. A read of the whole file
with an MD5 is checked before its last bytes are handed out: a copy whose
bytes differ is dropped and reported as damaged, the read starts over at the
next copy when nothing was handed out yet, else ChecksumMismatchError.
NoPathsError, naming each copy and why, once no copy is left.
"""

from __future__ import annotations

import hashlib
import logging
import re
import traceback
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from ..digits import parse_digits
from .errors import ChecksumMismatchError, NoPathsError, StorageNodeError
from .health import NodeHealth

logger = logging.getLogger(__name__)
# A copy that failed a read is logged as the reader's module always did
# (operators route it in LOGGING), for the async reader too.
read_logger = logging.getLogger(f"{__package__}.files")

_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


@dataclass(frozen=True)
class NodeStat:
    """What a storage node says about a file (from an HTTP HEAD)."""

    url: str
    length: int
    last_modified: datetime | None


@dataclass(frozen=True)
class Timeouts:
    """Seconds to connect to a node, and that it may stay silent (no byte moved)."""

    connect: float
    silence: float


@dataclass(frozen=True)
class BodyStart:
    """How a GET's answer starts the body at the asked byte.

    ``size``: the whole file's length when the node said it; ``skip``:
    bytes to drop first (a node that ignored the Range); ``empty``: the start
    is at or past the end (nothing to read; the response is done with).
    """

    size: int | None
    last_modified: datetime | None
    skip: int = 0
    empty: bool = False


@dataclass(frozen=True)
class Broken:
    """A copy failed: its GET (refused, non-2xx, a hanging node) or a read of
    its body (reset, silent past the progress timeout, cut).

    A reason, not the exception: an exception kept in a rule's generator
    would hold, through its traceback's frames, the transport stepping it.
    """

    reason: str

    @classmethod
    def of(cls, exc: BaseException) -> Broken:
        """The failure ``exc`` tells of (its frames dropped, :func:`drop_frames`)."""
        drop_frames(exc)
        return cls(str(exc) or type(exc).__name__)


@dataclass(frozen=True)
class AwaitAnswer:
    """Wait up to :data:`~.health.ANSWER_WAIT` for ``node`` to answer its probe."""

    node: str

    def via(self, transport: Any) -> Any:
        return transport.await_answer(self.node)


@dataclass(frozen=True)
class Open:
    """GET bytes ``start``..``end`` (inclusive; ``None``: to the end) of ``url``."""

    url: str
    start: int
    end: int | None
    last: bool

    def via(self, transport: Any) -> Any:
        return transport.open(self.url, self.start, self.end, last=self.last)


@dataclass(frozen=True)
class Receive:
    """Read up to ``amount`` bytes (fewer only at its end) of the open body."""

    amount: int

    def via(self, transport: Any) -> Any:
        return transport.receive(self.amount)


@dataclass(frozen=True)
class Release:
    """Give the open body's connection back; one not read to its end is closed."""

    def via(self, transport: Any) -> Any:
        return transport.release()


class OpenBody(Protocol):
    """What a transport's :class:`Open` answers with: the copy's length and date."""

    size: int | None
    last_modified: datetime | None


Headers = Mapping[str, str]
Effect = AwaitAnswer | Open | Receive | Release


def drop_frames(exc: BaseException) -> None:
    """Clear the locals of the finished frames that ``exc``, and the exceptions
    it chains, went through.

    An HTTP library may keep a failure in a local of a frame of its own
    traceback (urllib3 does): a cycle, holding every caller's frame, and so
    the client, until a full garbage collection, and the probe thread of a
    dropped client with it.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


def node_of(url: str) -> str:
    """The node a URL is on: scheme, host and port."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class NodeRules:
    """The node decisions the blocking and asyncio storage-node transports share.

    ``connect_timeout`` bounds a connect; ``progress_timeout`` the silence a
    node is allowed on a read, and on an upload when the caller can fail
    over to another destination; ``http_timeout`` on the upload to the last
    destination left. A node that failed without an answer is wary
    (:class:`.health.NodeHealth`, probed by ``_probe`` in a thread of the
    process) until it answers: :meth:`order` puts it last, and no request
    goes to it while it hangs.
    """

    def __init__(
        self,
        *,
        connect_timeout: float,
        http_timeout: float,
        progress_timeout: float,
        backoff: float,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.http_timeout = http_timeout
        self.progress_timeout = progress_timeout
        self.health = NodeHealth(probe=self._probe, backoff=backoff)

    @property
    def backoff(self) -> float:
        """The client's ``backoff``: ``0`` turns wary nodes off (:mod:`.health`)."""
        return self.health.backoff

    def order(self, urls: Iterable[str]) -> list[str]:
        """``urls`` with those of wary nodes moved last.

        The order among the others (the tracker's, weighted by free space)
        is kept.
        """
        return self.health.order(urls, node_of)

    def wary(self, url: str) -> bool:
        """Whether the node of ``url`` failed without an answer and has not answered since."""
        return self.health.wary(node_of(url))

    def rest(self, url: str) -> None:
        """The node of ``url`` failed without an answer: not used until it answers a probe."""
        self.health.failed(node_of(url), url)

    def answered(self, url: str) -> None:
        """The node of ``url`` answered a request: it is no longer wary."""
        self.health.answered(node_of(url))

    def failed(self, method: str, url: str, exc: BaseException) -> StorageNodeError:
        """The error of a ``method`` request the node of ``url`` failed without an
        answer (``exc``); the node rests."""
        drop_frames(exc)
        self.rest(url)
        return StorageNodeError(f"{method} {url} failed: {exc}", url=url)

    def admit(
        self, method: str, url: str, *, last: bool, read: bool = False
    ) -> Generator[AwaitAnswer, bool, Timeouts]:
        """The timeouts of a request to ``url``; StorageNodeError for a hanging node.

        A read gives a silent node up after ``progress_timeout``; so does an
        upload that has another destination, while the last one left
        (``last``) is waited for up to ``http_timeout``.
        """
        node = node_of(url)
        if self.health.hanging(node) and not (last and (yield AwaitAnswer(node))):
            raise StorageNodeError(
                f"{method} {url} not sent: the node failed without an answer a moment ago "
                f"and has not answered a probe since",
                url=url,
            )
        silence = self.progress_timeout if read or not last else self.http_timeout
        return Timeouts(self.connect_timeout, silence)

    def _probe(self, url: str) -> bool:
        """Whether the node of ``url`` answers a HEAD of it, whatever the status (blocking)."""
        raise NotImplementedError


def body_start(url: str, status: int, headers: Headers, start: int) -> BodyStart:
    """How the answer to a GET from byte ``start`` gives the body; StorageNodeError
    for an answer that does not.

    206 must cover ``start``; 416 (with the file's length) means the start
    is past the end; a 200 is the whole file, whose first ``start`` bytes
    are to be skipped.
    """
    modified = last_modified(headers)
    content_range = _CONTENT_RANGE.fullmatch(headers.get("Content-Range", "").strip())
    total = content_range and content_range.group(3)
    size = int(total) if total and total != "*" else None
    if status == 206:
        if content_range is None or content_range.group(1) is None:
            raise StorageNodeError(f"GET {url}: 206 without a usable Content-Range", url=url)
        if int(content_range.group(1)) != start:
            raise StorageNodeError(
                f"GET {url}: asked for byte {start}, got range {content_range.group(0)}",
                url=url,
            )
        return BodyStart(size, modified)
    if status == 416 and size is not None and start >= size:
        return BodyStart(size, modified, empty=True)
    if status == 200:
        if start:
            logger.debug("%s ignored the Range header; skipping %d bytes", url, start)
        return BodyStart(parse_digits(headers.get("Content-Length", "")), modified, skip=start)
    raise StorageNodeError(f"GET {url} answered HTTP {status}", url=url, status=status)


def range_header(start: int, end: int | None) -> dict[str, str]:
    """The headers of a GET of bytes ``start``..``end``: a Range unless it is the whole file."""
    if start or end is not None:
        return {"Range": f"bytes={start}-{'' if end is None else end}"}
    return {}


def head_stat(url: str, status: int, headers: Headers) -> NodeStat:
    """The NodeStat of a HEAD's answer; StorageNodeError for a non-2xx or no length."""
    if not 200 <= status < 300:
        raise StorageNodeError(f"HEAD {url} answered HTTP {status}", url=url, status=status)
    size = parse_digits(headers.get("Content-Length"))
    if size is None:
        raise StorageNodeError(f"HEAD {url} gave no usable Content-Length", url=url)
    return NodeStat(url, size, last_modified(headers))


def check_put(url: str, status: int, body: bytes) -> None:
    """StorageNodeError unless a PUT's answer is 2xx (any 2xx is success)."""
    if not 200 <= status < 300:
        excerpt = body[:200].decode("utf-8", "replace").strip()
        raise StorageNodeError(
            f"PUT {url} answered HTTP {status}: {excerpt}", url=url, status=status
        )


def ended_early(url: str) -> StorageNodeError:
    """The error of a body that ended before the bytes a node ignoring Range had to skip."""
    return StorageNodeError(f"GET {url}: body ended before the requested range", url=url)


def last_modified(headers: Headers) -> datetime | None:
    """The Last-Modified header's date, in UTC; ``None`` when missing or unreadable."""
    value = headers.get("Last-Modified")
    if not value:
        return None
    try:
        modified = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    # An HTTP date is in UTC; its asctime form names no zone, and a date
    # without one cannot be compared with the others.
    return modified if modified.tzinfo else modified.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Mark:
    """A point of a :class:`CopyReading` to go back to: its position and
    the MD5 digest of the bytes before it."""

    position: int
    hasher: Any
    hashed: int


class CopyReading:
    """The rules of one read of a stored file from its copies (see the module).

    ``candidates`` are the copies' URLs in the order to try them (wary
    nodes already last); ``offset``/``length`` select a part of the file;
    ``size`` is the file's length when known (the tracker's); ``md5`` its
    hex digest, checked on a read of the whole file; ``on_damaged`` is told
    the URL of a copy whose bytes differ from it. ``url`` (the copy serving
    now), ``size`` and ``last_modified`` are known once a copy was opened.
    """

    def __init__(
        self,
        candidates: list[str],
        *,
        nodes: NodeRules,
        key: str,
        offset: int = 0,
        length: int | None = None,
        size: int | None = None,
        md5: str | None = None,
        on_damaged: Callable[[str], None] | None = None,
    ) -> None:
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        if length is not None and length < 0:
            raise ValueError(f"length must be >= 0 or None, got {length}")
        self.key = key
        self.url: str | None = None
        self.size = size
        self.last_modified: datetime | None = None
        self.position = 0
        self.attempts: list[tuple[str, str]] = []
        self.holding = False  # whether the transport has a body open
        self._nodes = nodes
        self._candidates = candidates
        self._offset = offset
        self._length = length
        # Only a read of the whole file can be checked against its MD5.
        self._md5 = md5.lower() if md5 and offset == 0 and length is None else None
        self._hasher: Any = None
        self._hashed = 0
        self._on_damaged = on_damaged
        self._restart_digest()

    def open(self) -> Generator[Effect, Any, None]:
        """Open the body at the current position from the first working copy."""
        start = self._offset + self.position
        end = self._offset + self._length - 1 if self._length else None
        while self._candidates:
            url = self._candidates[0]
            body = yield Open(url, start, end, len(self._candidates) == 1)
            if isinstance(body, Broken):
                self._drop_candidate(body.reason)
                continue
            self.holding = True
            if self.size is not None and body.size is not None and body.size != self.size:
                yield from self._fail(f"{url} holds {body.size} bytes, the file has {self.size}")
                continue
            self.url = url
            self.size = body.size if self.size is None else self.size
            self.last_modified = self.last_modified or body.last_modified
            return
        tried = "; ".join(f"{url}: {reason}" for url, reason in self.attempts)
        raise NoPathsError(
            f"no storage node could serve key {self.key!r} from byte {start} (tried {tried})",
            key=self.key,
            attempts=self.attempts,
        )

    def read(self, size: int) -> Generator[Effect, Any, bytes]:
        """Up to ``size`` bytes from the current position; ``b""`` only at the end.

        A body may give fewer bytes than asked; they are handed out as they
        come, but for a read that takes the rest of a file checked against
        its MD5 with nothing handed out yet: its bytes are held until the
        check, so that a damaged copy is left for the next before any byte.
        """
        handed_out = self.position > 0
        held: list[bytes] = []
        taken = 0  # bytes of this read held so far
        while size > taken:
            if not self.holding and self._remaining() != 0:
                yield from self.open()
            remaining = self._remaining()
            if remaining == 0:
                yield from self._verify()
                return b"".join(held)
            want = size - taken if remaining is None else min(size - taken, remaining)
            data = yield Receive(want)
            if isinstance(data, Broken):
                yield from self._fail_node(
                    f"read failed at byte {self._offset + self.position}: {data.reason}"
                )
                continue
            if not data:
                if remaining is None:
                    yield from self._verify()
                    return b"".join(held)
                yield from self._fail_node(f"body ended {remaining} bytes early")
                continue
            self._digest(data)
            self.position += len(data)
            held.append(data)
            taken += len(data)
            if remaining == len(data):
                try:
                    yield from self._verify()  # before the last bytes are handed out
                except ChecksumMismatchError:
                    if handed_out or not self._candidates:
                        raise
                    self.position = 0  # none of it was handed out: read the next copy
                    self._restart_digest()
                    held, taken = [], 0
                    continue
            elif (
                not handed_out
                and self._hasher is not None
                and remaining is not None
                and size - taken >= remaining - len(data)
            ):
                continue  # this read ends the checked file: hold its bytes for the check
            return b"".join(held)
        return b"".join(held)

    def fill(self, size: int) -> Generator[Effect, Any, bytes]:
        """``size`` bytes from the current position, fewer only at the end (a
        file's ``read(n)``): :meth:`read` until they are all there."""
        pieces: list[bytes] = []
        wanted = size
        while wanted > 0 and (data := (yield from self.read(wanted))):
            pieces.append(data)
            wanted -= len(data)
        return b"".join(pieces)

    def read_all(self, chunk_size: int) -> Generator[Effect, Any, bytes]:
        """The rest of the stream, read in ``chunk_size`` pieces.

        When the whole file is read and does not match its MD5, it is read
        again from the next copy; ChecksumMismatchError when none is left.
        """
        while True:
            from_start = self.position == 0
            chunks = []
            try:
                while data := (yield from self.read(chunk_size)):
                    chunks.append(data)
            except ChecksumMismatchError:
                if not (from_start and self._candidates):
                    raise
                yield from self.seek(0)
                continue
            return b"".join(chunks)

    def seek(self, target: int) -> Generator[Effect, Any, int]:
        """Move to ``target`` (from the stream's start); the next read reopens there."""
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        if target != self.position:
            yield from self.release()
            self.position = target
            if target == 0:
                self._restart_digest()
        return self.position

    def mark(self) -> Mark:
        """Where the stream is now, for :meth:`back_to`."""
        hasher = None if self._hasher is None else self._hasher.copy()
        return Mark(self.position, hasher, self._hashed)

    def back_to(self, mark: Mark) -> Generator[Effect, Any, None]:
        """Go back to ``mark``, the MD5 check with it: the bytes read since were
        handed out to no one (a cancelled read), so the next read reopens there."""
        yield from self.release()
        self.position = mark.position
        self._hasher, self._hashed = mark.hasher, mark.hashed

    def release(self) -> Generator[Effect, Any, None]:
        """Give the open body's connection back, if one is open."""
        if self.holding:
            self.holding = False
            yield Release()

    def stream_length(self) -> int:
        """The length of the part read; OSError when the file's size is unknown."""
        stop = self._stop()
        if stop is None:
            raise OSError(f"the size of key {self.key!r} is unknown: cannot seek from the end")
        return max(0, stop - self._offset)

    def _restart_digest(self) -> None:
        if self._md5 is not None:
            self._hasher, self._hashed = hashlib.md5(), 0

    def _digest(self, data: bytes) -> None:
        """Hash bytes read in sequence from the start (a seek elsewhere stops it)."""
        if self._hasher is not None and self._hashed == self.position:
            self._hasher.update(data)
            self._hashed += len(data)

    def _verify(self) -> Generator[Effect, Any, None]:
        """At the end of a whole read: ChecksumMismatchError if the bytes differ from the MD5."""
        hasher, self._hasher = self._hasher, None
        if hasher is None or self._hashed != self.position:
            return
        actual = hasher.hexdigest()
        if actual == self._md5:
            return
        url = self.url or ""
        yield from self._fail(f"its bytes have MD5 {actual}, the tracker recorded {self._md5}")
        if self._on_damaged is not None:
            self._on_damaged(url)
        raise ChecksumMismatchError(
            f"key {self.key!r} as read from {url} has MD5 {actual}, not the {self._md5} the "
            f"tracker recorded: that copy is damaged and the bytes read are not the file's",
            url=url,
            expected=self._md5 or "",
            actual=actual,
        )

    def _stop(self) -> int | None:
        """Absolute position where this stream ends, when known."""
        ends = [self.size]
        if self._length is not None:
            ends.append(self._offset + self._length)
        known = [end for end in ends if end is not None]
        return min(known) if known else None

    def _remaining(self) -> int | None:
        stop = self._stop()
        return None if stop is None else max(0, stop - self._offset - self.position)

    def _fail(self, reason: str) -> Generator[Effect, Any, None]:
        """The current copy broke: drop it and reopen elsewhere on the next read."""
        yield from self.release()
        self._drop_candidate(reason)

    def _fail_node(self, reason: str) -> Generator[Effect, Any, None]:
        """The current copy's node stopped sending: rest that node, then :meth:`_fail`."""
        if self.url is not None:
            self._nodes.rest(self.url)
        yield from self._fail(reason)

    def _drop_candidate(self, reason: str) -> None:
        url = self._candidates.pop(0)
        self.attempts.append((url, reason))
        read_logger.warning("reading key %r from %s failed: %s", self.key, url, reason)


class CopyReader:
    """What the blocking and the asyncio node readers share: their arguments,
    and the attributes of the copy serving now.

    ``paths`` are the copies' URLs, tried in order, those on wary nodes
    last; ``offset``, ``length``, ``size``, ``md5`` and ``on_damaged`` are
    :class:`CopyReading`'s; ``chunk_size`` is the piece a whole read is read
    in. Attributes: ``url`` (the copy serving now), ``size`` (length of the
    whole file, from the first copy when not given), ``last_modified``.
    """

    def __init__(
        self,
        nodes: NodeRules,
        paths: Sequence[str],
        *,
        key: str,
        offset: int = 0,
        length: int | None = None,
        size: int | None = None,
        md5: str | None = None,
        chunk_size: int = 1 << 20,
        on_damaged: Callable[[str], None] | None = None,
    ) -> None:
        self._reading = CopyReading(
            nodes.order(paths),
            nodes=nodes,
            key=key,
            offset=offset,
            length=length,
            size=size,
            md5=md5,
            on_damaged=on_damaged,
        )
        super().__init__()  # the blocking reader's io.RawIOBase
        self.key = key
        self.chunk_size = chunk_size

    @property
    def url(self) -> str | None:
        """The copy serving now."""
        return self._reading.url

    @property
    def size(self) -> int | None:
        """The length of the whole file, when known."""
        return self._reading.size

    @property
    def last_modified(self) -> datetime | None:
        return self._reading.last_modified

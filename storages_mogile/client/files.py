"""File objects of the client: the upload source, the reader, the writer.

:class:`UploadSource` feeds a caller's binary file to a storage node in
chunks and can start over for the next destination; :class:`NodeReader`
streams a stored file from its replicas, moving to another replica when one
fails; :class:`NewFile` collects written bytes and stores them on close.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import IO, Any, TypeVar

from urllib3.exceptions import HTTPError

from .core import Steps, run_steps
from .errors import StorageNodeError, UnrewindableSourceError
from .nodes import NodeBody, StorageNodes
from .reading import Broken, CopyReader

T = TypeVar("T")

logger = logging.getLogger(__name__)


class InputReadError(Exception):
    """The caller's file failed while being uploaded; ``error`` is what it raised.

    Raised inside the request body so that urllib3 does not mistake it for
    a storage node failure; the client re-raises ``error`` itself.
    """

    def __init__(self, error: BaseException) -> None:
        self.error = error
        super().__init__(str(error))


class UploadSource:
    """The bytes of one upload, read from a binary file object in chunks.

    The upload starts at the file's current position. A seekable file also
    gives the length up front (sent as Content-Length) and can be rewound
    for another destination; a non-seekable one is
    sent chunked and can only move on to another destination if nothing was
    read from it yet. With ``checksum`` the MD5 of the bytes is computed on
    the way (it costs about as much CPU as the transfer itself).

    A regular file on disk (``open(path, "rb")``, Django's
    TemporaryUploadedFile) longer than a chunk is, when no MD5 is needed,
    handed to the kernel: ``sendfile`` moves its bytes to the socket
    without copying them through Python.
    """

    def __init__(
        self, fileobj: IO[bytes], chunk_size: int, *, key: str, checksum: bool = False
    ) -> None:
        self.key = key
        self._file = fileobj
        self._chunk_size = chunk_size
        self.checksum = checksum
        self._start = _start_position(fileobj)
        self.length: int | None = None
        if self._start is not None:
            self.length = fileobj.seek(0, io.SEEK_END) - self._start
            fileobj.seek(self._start)
        self.consumed = 0
        self._md5 = hashlib.md5() if checksum else None
        self._sendfile = (
            not checksum
            and self.length is not None
            and self.length > chunk_size
            and _is_regular_file(fileobj)
        )

    def send_to(self, nodes: StorageNodes, url: str, *, failover: bool = False) -> None:
        """PUT the bytes to ``url``: by ``sendfile`` from a regular file to an
        ``http://`` node (TLS needs the bytes in Python), else in chunks.

        ``failover``: another destination is left, so a silent node is given
        up after the nodes' progress timeout.
        """
        if not (self._sendfile and url.startswith("http://")):
            nodes.put(url, self.chunks(), self.length, failover=failover)
            return
        assert self._start is not None and self.length is not None
        self.consumed = nodes.put_file(url, self._file, self._start, self.length, failover=failover)
        if self.consumed < self.length:
            raise InputReadError(
                EOFError(
                    f"the file to store as key {self.key!r} ended after "
                    f"{self.consumed} of {self.length} bytes (did it shrink?)"
                )
            )
        if os.fstat(self._file.fileno()).st_size > self._start + self.length:
            raise self._longer_than_said()

    @property
    def md5_hex(self) -> str:
        """MD5 of the bytes read in the current attempt."""
        if self._md5 is None:
            raise RuntimeError("UploadSource was made without checksum=True")
        return self._md5.hexdigest()

    def restart(self, failure: str) -> None:
        """Go back to the start before uploading again (``failure`` says why).

        UnrewindableSourceError when bytes were read from a non-seekable
        file: nothing was stored, and sending the rest would store a wrong file.
        """
        if self.consumed and self._start is None:
            raise UnrewindableSourceError(
                f"storing key {self.key!r} failed after {self.consumed} bytes were read from "
                f"a non-seekable file, which cannot be rewound to try again ({failure}); "
                f"nothing was stored: store it again from a new stream, or pass a seekable "
                f"file (new_file() spools)",
                key=self.key,
            )
        if self.consumed:
            self._file.seek(self._start or 0)
        self.consumed = 0
        self._md5 = hashlib.md5() if self.checksum else None

    def chunks(self) -> Iterator[bytes]:
        """The bytes, chunk by chunk; a failing read raises InputReadError."""
        remaining = self.length
        while remaining is None or remaining > 0:
            size = self._chunk_size if remaining is None else min(self._chunk_size, remaining)
            data = self._read(size)
            if not data:
                if remaining:
                    raise InputReadError(
                        EOFError(
                            f"the file to store as key {self.key!r} ended after "
                            f"{self.consumed} of {self.length} bytes (did it shrink?)"
                        )
                    )
                return
            self.consumed += len(data)
            if self._md5 is not None:
                self._md5.update(data)
            if remaining is not None:
                remaining -= len(data)
            yield data
        self._check_ended()

    def _check_ended(self) -> None:
        """Raise if a file of known length has more bytes than it said.

        The Content-Length is already sent, so the extra bytes would be cut
        off silently: a file that grew, or whose seek(0, 2) under-reports.
        """
        if self._read(1):
            raise self._longer_than_said()

    def _longer_than_said(self) -> InputReadError:
        return InputReadError(
            ValueError(
                f"the file to store as key {self.key!r} holds more than the "
                f"{self.length} bytes its seek(0, 2) reported (did it grow?); "
                f"nothing was stored"
            )
        )

    def _read(self, size: int) -> bytes:
        try:
            data = self._file.read(size)
        except Exception as exc:  # the caller's file, not the node: report it as such
            raise InputReadError(exc) from exc
        if not isinstance(data, (bytes, bytearray)):
            raise InputReadError(
                TypeError(
                    f"the file to store as key {self.key!r} must be opened in binary mode: "
                    f"read() returned {type(data).__name__}"
                )
            )
        return bytes(data) if isinstance(data, bytearray) else data


def _is_regular_file(fileobj: IO[bytes]) -> bool:
    """Whether ``fileobj`` is backed by a regular file's descriptor (Django's File unwrapped).

    A spool still in memory is not, and is not asked: its ``fileno()``
    would write it to disk first.
    """
    layer: Any = fileobj
    while layer is not None:
        if isinstance(layer, tempfile.SpooledTemporaryFile):
            return False
        inner = getattr(layer, "file", None)
        layer = inner if inner is not layer else None
    try:
        descriptor = fileobj.fileno()
        if hasattr(fileobj, "flush"):
            fileobj.flush()  # written bytes still in a buffer would not be sent
        return stat.S_ISREG(os.fstat(descriptor).st_mode)
    except (AttributeError, OSError, ValueError):
        return False


def _start_position(fileobj: IO[bytes]) -> int | None:
    """The current position of a seekable file, else ``None``."""
    try:
        return fileobj.tell() if fileobj.seekable() else None
    except (AttributeError, OSError, ValueError):
        return None


class NodeReader(CopyReader, io.RawIOBase):
    """A stored file, streamed from the first replica that answers.

    Replicas are tried in the given order, those on nodes that failed a
    moment ago last (:meth:`StorageNodes.order`); one that refuses
    (connection error, non-2xx answer), breaks mid-stream or stays silent
    for the nodes' progress timeout while another is left is dropped, and
    reading goes on from the current position at the next one, with a
    Range request (the rules: :class:`.reading.CopyReading`).
    ``offset``/``length`` select a part of the file. Seeking is supported (it
    reopens at the new position). ``size`` is the file's length when known
    (the tracker's): a replica holding another length is skipped, and one
    ending early is left for the next. The arguments and the attributes
    ``url``, ``size`` and ``last_modified`` are :class:`.reading.CopyReader`'s.

    With ``md5`` (the hex digest the tracker recorded), a read of the whole
    file from its start is checked before its last bytes are returned, and
    a replica whose bytes do not match is dropped and reported to
    ``on_damaged`` (with its URL). When nothing of the file was handed out
    yet (a file read in one call: one chunk of the stream view), the read
    starts again at the next replica; :meth:`readall` does the same for any
    length. Otherwise ChecksumMismatchError is raised instead of the last
    bytes, so a damaged copy is never delivered whole.
    """

    def __init__(self, nodes: StorageNodes, paths: Sequence[str], **options: Any) -> None:
        super().__init__(nodes, paths, **options)
        self._transport = _BodyTransport(nodes)
        self._run(self._reading.open())

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all with -1); ``b""`` only at the end of the stream.

        The bytes come as the storage node's response gave them: no copy
        through a buffer, as ``readinto`` needs.
        """
        if size is None or size < 0:
            return self.readall()
        return self._run(self._reading.read(size))

    def readinto(self, buffer: Any) -> int:
        """Read into ``buffer``; 0 only at the end of the stream."""
        view = memoryview(buffer).cast("B")
        data = self._run(self._reading.read(len(view)))
        view[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        """The rest of the stream, read in ``chunk_size`` pieces.

        When the whole file is read and does not match its MD5, it is read
        again from the next replica; ChecksumMismatchError when none is left.
        """
        return self._run(self._reading.read_all(self.chunk_size))

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to another position; the next read reopens there."""
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._reading.position + offset
        elif whence == io.SEEK_END:
            target = self._reading.stream_length() + offset
        else:
            raise ValueError(f"invalid whence {whence!r}")
        return self._run(self._reading.seek(target))

    def tell(self) -> int:
        return self._reading.position

    def close(self) -> None:
        """Release the storage node connection back to the pool."""
        if not self.closed:
            self._run(self._reading.release())
        super().close()

    def _run(self, steps: Generator[Any, Any, T]) -> T:
        """Drive the reading rules' ``steps`` over this reader's storage nodes."""
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return run_steps(Steps(steps), self._transport)


class _BodyTransport:
    """The blocking transport of a :class:`NodeReader`: the body it holds open."""

    def __init__(self, nodes: StorageNodes) -> None:
        self._nodes = nodes
        self._body: NodeBody | None = None

    def open(self, url: str, start: int, end: int | None, *, last: bool) -> Any:
        """The body of ``url`` from ``start``, or the StorageNodeError of the attempt."""
        try:
            self._body = self._nodes.open(url, start, end, last=last)
        except StorageNodeError as exc:
            return exc
        return self._body

    def receive(self, amount: int) -> bytes | Broken:
        assert self._body is not None
        try:
            return self._body.read(amount)
        except (HTTPError, OSError) as exc:
            return Broken(str(exc))

    def release(self) -> None:
        if self._body is not None:
            self._body.release()
            self._body = None


class NewFile(io.BufferedIOBase):
    """A writable file whose bytes are stored under a key on ``close()``.

    Writes go to a spool (memory up to ``spool_size`` bytes, then a
    temporary file). ``close()`` stores them; ``abort()`` throws them away.
    Used as a context manager, an exception inside the block aborts, so
    nothing partial is ever stored. A NewFile dropped without close() is
    aborted too, with a warning.
    """

    def __init__(self, store: Callable[[IO[bytes]], int], *, key: str, spool_size: int) -> None:
        super().__init__()
        self.key = key
        self.length: int | None = None
        self._store = store
        # Lives as long as this file: closed by close() or abort(), not by a with block.
        self._spool = tempfile.SpooledTemporaryFile(max_size=spool_size)  # noqa: SIM115

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        """Add ``data`` (any bytes-like object) to the file."""
        if self.closed:
            raise ValueError(f"write to closed new file for key {self.key!r}")
        return self._spool.write(data)

    def close(self) -> None:
        """Store the written bytes (once); ``length`` is then the stored size."""
        if self.closed:
            return
        try:
            self._spool.seek(0)
            self.length = self._store(self._spool)
        finally:
            self._spool.close()
            super().close()

    def abort(self) -> None:
        """Discard everything written; nothing is stored."""
        if not self.closed:
            self._spool.close()
            super().close()

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None:
            self.close()
        else:
            logger.info("new file for key %r aborted by %r; nothing stored", self.key, exc)
            self.abort()

    def __del__(self) -> None:
        if not self.closed:
            logger.warning("new file for key %r was never closed; discarded", self.key)
            self.abort()

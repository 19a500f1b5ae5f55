"""A storage node: the HTTP server a MogileFS ``mogstored`` provides.

Files live below the node's root directory, one ``dev<devid>`` directory per
device, at the paths the tracker hands out
(``/dev1/0/000/000/0000000001.fid``). The node answers like mogstored
(Perlbal 1.80) does: ``PUT`` (with ``Content-Length``, chunked, or neither)
answers ``200`` with a small HTML body, ``GET``/``HEAD`` serve files with
``Last-Modified`` and single byte ranges, ``DELETE`` answers ``204``, any
other method ``400``.

Status lines say ``HTTP/1.0``, as Perlbal's do, but an HTTP/1.1 client's
connection is kept open (``Connection: keep-alive``, at most 100 requests,
30 s idle), which ``http.client`` and urllib3 honour, so pooled clients
reuse connections. Bodies are streamed in blocks both ways; a file being
uploaded is written beside its final name and renamed into place when
complete, so readers never see half a file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socketserver
import tempfile
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from ..digits import parse_digits
from .servers import ListeningService, TrackedServerMixin

logger = logging.getLogger(__name__)

BLOCK = 1 << 20
KEEP_ALIVE_TIMEOUT = 30
KEEP_ALIVE_MAX = 100
SERVER_NAME = "storages-mogile-devserver"

_DEVICE_DIR = re.compile(r"dev(\d+)")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
# A chunk size is a hex number no file can exceed in 15 digits (no sign,
# which int(..., 16) would accept).
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
# More digits than this is past the end of any file (int() refuses 4,301).
_MAX_POSITION_DIGITS = 18

OK_BODY = b"<h1>200 - OK</h1>\n"
NOT_FOUND_BODY = b"<h1>404 - Not Found</h1>\n"
BAD_REQUEST_BODY = b"<h1>400 - Bad request</h1>\n"


class Unsatisfiable(Exception):
    """A byte range that starts beyond the end of the file."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte a ``Range`` header asks for.

    ``None`` means "send the whole file": no header, a malformed one, or
    several ranges (which mogstored ignores too). Raises Unsatisfiable for a
    range starting at or beyond the end. A suffix range ``bytes=-N`` gives
    the last N bytes (mogstored gets this wrong; see docs/devserver.md).
    """
    match = _RANGE.fullmatch((header or "").strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":
        wanted = _position(last)
        if wanted == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - wanted), size - 1
    start = _position(first)
    if start >= size:
        raise Unsatisfiable
    end = _position(last) if last else size - 1
    if end < start:
        return None
    return start, min(end, size - 1)


def _position(digits: str) -> int:
    """A byte position of a Range header; an absurdly long one is past every end."""
    significant = digits.lstrip("0")
    if len(significant) > _MAX_POSITION_DIGITS:
        return 10**_MAX_POSITION_DIGITS
    return int(significant or "0")


def usage_report(directory: Path) -> bytes:
    """The ``/dev<N>/usage`` text mogstored writes for a device (KiB units)."""
    usage = shutil.disk_usage(directory)
    total, used, free = usage.total // 1024, usage.used // 1024, usage.free // 1024
    percent = round(100 * used / total) if total else 0
    lines = [
        f"available: {free}",
        "device: devserver",
        f"disk: {directory}",
        f"time: {int(time.time())}",
        f"total: {total}",
        f"use: {percent}%",
        f"used: {used}",
    ]
    return ("\n".join(lines) + "\n").encode()


class _NodeServer(TrackedServerMixin, ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], root: Path, running: threading.Event) -> None:
        self.root = root
        self.running = running  # cleared while the node hangs
        super().__init__(address, _NodeHandler)


class _NodeHandler(BaseHTTPRequestHandler):
    """One client connection to a storage node."""

    server: _NodeServer
    protocol_version = "HTTP/1.0"
    server_version = SERVER_NAME
    timeout = KEEP_ALIVE_TIMEOUT
    # Small responses otherwise wait ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.served = 0

    # -- request loop -------------------------------------------------------

    def handle_one_request(self) -> None:
        """Read one request and dispatch it by method."""
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except OSError:  # idle timeout, or the node is stopping
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            return
        if not self.parse_request():
            return
        self.pause()
        self.served += 1
        methods = {
            "GET": self.serve_file,
            "HEAD": self.serve_file,
            "PUT": self.store_file,
            "DELETE": self.delete_file,
        }
        try:
            methods.get(self.command, self.reject)()
            self.wfile.flush()
        except OSError as exc:  # the client went away mid-transfer
            logger.debug("connection from %s dropped: %s", self.client_address, exc)
            self.close_connection = True

    def pause(self) -> None:
        """Wait while the node hangs (:meth:`StorageNode.hang`); end if it stops meanwhile."""
        self.server.running.wait()
        if self.server.stopping.is_set():
            raise ConnectionAbortedError("the storage node stopped")

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    # -- responses ----------------------------------------------------------

    def keep_alive(self) -> bool:
        """Whether this connection may carry another request."""
        connection = self.headers.get("Connection", "").lower()
        if self.request_version == "HTTP/1.1":
            wanted = "close" not in connection
        else:
            wanted = False
        return wanted and self.served < KEEP_ALIVE_MAX

    def begin(
        self, status: int, reason: str, headers: list[tuple[str, str]], *, close: bool = False
    ) -> None:
        """Send the status line, the headers and the connection headers."""
        self.log_request(status)
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        if close or not self.keep_alive():
            self.send_header("Connection", "close")
        else:
            self.send_header("Connection", "keep-alive")
            self.send_header("Keep-Alive", f"timeout={KEEP_ALIVE_TIMEOUT}, max={KEEP_ALIVE_MAX}")
        self.end_headers()

    def simple(self, status: int, reason: str, body: bytes, *, close: bool = False) -> None:
        """A short HTML answer (errors, PUT acknowledgement)."""
        headers = [
            ("Content-Type", "text/html"),
            ("Content-Length", str(len(body))),
            ("Server", SERVER_NAME),
        ]
        self.begin(status, reason, headers, close=close)
        if self.command != "HEAD":
            self.wfile.write(body)

    def not_found(self, detail: bytes = b"") -> None:
        self.simple(404, "Not Found", NOT_FOUND_BODY + detail)

    def bad_request(self, detail: bytes = b"", *, close: bool = False) -> None:
        self.simple(400, "Bad request", BAD_REQUEST_BODY + detail, close=close)

    def reject(self) -> None:
        """Methods mogstored does not serve (OPTIONS, POST, MOVE, ...)."""
        self.discard_body()
        self.bad_request()

    # -- paths ----------------------------------------------------------------

    def segments(self) -> list[str] | None:
        """The request path split into segments; ``None`` if it is unsafe."""
        path = unquote(urlsplit(self.path).path)
        parts = path.strip("/").split("/")
        if any(part in (".", "..") or "\0" in part or "\\" in part for part in parts):
            return None
        return parts

    def device_dir(self, parts: list[str]) -> Path | None:
        """The device directory a path is under, if this node has it."""
        if not _DEVICE_DIR.fullmatch(parts[0]):
            return None
        directory = self.server.root / parts[0]
        return directory if directory.is_dir() else None

    # -- GET / HEAD ---------------------------------------------------------------

    def serve_file(self) -> None:
        parts = self.segments()
        if parts is None:
            self.bad_request()
            return
        path = self.server.root.joinpath(*parts)
        if len(parts) == 2 and parts[1] == "usage" and self.device_dir(parts):
            self.send_content(usage_report(path.parent), time.time())
        elif path.is_dir():
            self.simple(200, "OK", OK_BODY + b"Directory listing disabled")
        elif path.is_file():
            self.send_file(path)
        else:
            self.not_found()

    def file_headers(self, modified: str) -> list[tuple[str, str]]:
        return [
            ("Date", formatdate(usegmt=True)),
            ("Server", SERVER_NAME),
            ("Last-Modified", modified),
            ("Accept-Ranges", "bytes"),
        ]

    def send_file(self, path: Path) -> None:
        """Send a stored file, honouring If-Modified-Since and Range."""
        try:
            handle = path.open("rb")
        except FileNotFoundError:  # deleted between the check and the open
            self.not_found()
            return
        with handle:
            stat = os.fstat(handle.fileno())
            modified = formatdate(stat.st_mtime, usegmt=True)
            if self.headers.get("If-Modified-Since") == modified:
                self.begin(304, "Not Modified", self.file_headers(modified))
                return
            size = stat.st_size
            try:
                wanted = byte_range(self.headers.get("Range"), size)
            except Unsatisfiable:
                headers = [("Content-Range", f"bytes */{size}"), ("Content-Length", "0")]
                self.begin(
                    416, "Request range not satisfiable", headers + self.file_headers(modified)
                )
                return
            headers = self.file_headers(modified) + [("Content-Type", "text/plain")]
            if wanted is None:
                first, count = 0, size
                self.begin(200, "OK", headers + [("Content-Length", str(size))])
            else:
                first, count = wanted[0], wanted[1] - wanted[0] + 1
                headers.append(("Content-Range", f"bytes {wanted[0]}-{wanted[1]}/{size}"))
                self.begin(206, "Partial Content", headers + [("Content-Length", str(count))])
            if self.command == "GET":
                self.send_blocks(handle, first, count)

    def send_blocks(self, handle: BinaryIO, first: int, count: int) -> None:
        """Send ``count`` bytes of a file from ``first``, a block at a time
        (so that a node told to hang stops between blocks)."""
        while count:
            self.pause()
            sent = self.connection.sendfile(handle, offset=first, count=min(count, BLOCK))
            if not sent:
                raise ConnectionError(f"{handle.name} ended before byte {first + count}")
            first += sent
            count -= sent

    def send_content(self, body: bytes, modified_at: float) -> None:
        """Send generated text the way a file is sent (the usage report)."""
        headers = self.file_headers(formatdate(modified_at, usegmt=True))
        self.begin(
            200,
            "OK",
            headers + [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
        )
        if self.command == "GET":
            self.wfile.write(body)

    # -- PUT ---------------------------------------------------------------------------

    def store_file(self) -> None:
        parts = self.segments()
        if parts is None or len(parts) < 2 or not parts[-1]:
            self.discard_body()
            self.bad_request(b"Does not meet minimum directory requirement", close=True)
            return
        if self.device_dir(parts) is None:
            self.discard_body()
            self.not_found(b"Base directory does not exist")
            return
        target = self.server.root.joinpath(*parts)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            self.discard_body()
            self.simple(
                409,
                "Conflict",
                b"<h1>409 - Conflict</h1>\na path component is not a directory\n",
                close=True,
            )
            return
        try:
            self.receive(target)
        except ValueError as exc:
            logger.debug("bad upload body for %s: %s", self.path, exc)
            self.bad_request(close=True)
            return
        self.simple(200, "OK", OK_BODY)

    def body_blocks(self) -> Iterator[bytes]:
        """The request body in blocks: chunked, by Content-Length, or none.

        mogstored stores an empty file for a PUT with neither, so do we.
        Raises ValueError for a malformed length or chunk header and
        ConnectionError if the client stops sending early.
        """
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            yield from self.chunked_blocks()
            return
        length = self.headers.get("Content-Length")
        if length is None:
            return
        count = parse_digits(length.strip())
        if count is None:
            raise ValueError(f"Content-Length {length!r} is not a number")
        yield from self.exact_blocks(count)

    def exact_blocks(self, remaining: int) -> Iterator[bytes]:
        while remaining:
            self.pause()
            block = self.rfile.read(min(remaining, BLOCK))
            if not block:
                raise ConnectionError("client closed the connection before the body was complete")
            remaining -= len(block)
            yield block

    def chunked_blocks(self) -> Iterator[bytes]:
        while True:
            line = self.rfile.readline(1024)
            digits = line.split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(digits):
                raise ValueError(f"bad chunk header {line[:40]!r}")
            size = int(digits, 16)
            if size == 0:
                break
            yield from self.exact_blocks(size)
            self.rfile.readline(1024)  # the CRLF closing the chunk
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass  # trailer fields, ignored

    def receive(self, target: Path) -> None:
        """Write the body beside ``target`` and rename it into place."""
        temporary = None
        try:
            with tempfile.NamedTemporaryFile(
                dir=target.parent, prefix=f".{target.name}.", delete=False
            ) as handle:
                temporary = handle.name
                for block in self.body_blocks():
                    handle.write(block)
            os.replace(temporary, target)
        except BaseException:
            if temporary is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
            raise

    def discard_body(self) -> None:
        """Read and drop a request body so the connection stays in sync."""
        try:
            for _ in self.body_blocks():
                pass
        except ValueError:
            self.close_connection = True

    # -- DELETE ---------------------------------------------------------------------------

    def delete_file(self) -> None:
        parts = self.segments()
        path = self.server.root.joinpath(*parts) if parts else None
        try:
            if path is None or not path.is_file():
                raise FileNotFoundError(self.path)
            path.unlink()
        except FileNotFoundError:
            self.not_found()
            return
        self.begin(204, "No Content", [("Server", SERVER_NAME)])


class StorageNode(ListeningService):
    """One storage host serving its devices over HTTP.

    ``root`` holds a ``dev<devid>`` directory per device; ``url`` is the
    node's base URL and ``devids`` the devices it has.
    """

    name = "storage-node"

    def __init__(self, root: Path | str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._running = threading.Event()
        self._running.set()

    @property
    def hung(self) -> bool:
        """Whether the node hangs (:meth:`hang`)."""
        return not self._running.is_set()

    def hang(self) -> None:
        """Stop moving bytes, as a mogstored stopped with SIGSTOP does.

        Connections are still accepted (the kernel's backlog does that for
        a stopped process), requests are left unanswered, and transfers
        under way stall after the block being sent or received, until
        :meth:`resume` (or :meth:`stop`).
        """
        self._running.clear()

    def resume(self) -> None:
        """Serve again after :meth:`hang`: the held requests go on."""
        self._running.set()

    def stop(self) -> None:
        """Stop listening and drop every connection (held ones of a hung node too)."""
        server = self._server
        if server is not None:
            server.stopping.set()  # type: ignore[attr-defined]  # held requests end
        self._running.set()
        super().stop()

    @property
    def url(self) -> str:
        """``http://host:port`` of the node."""
        return f"http://{self.address}"

    @property
    def devids(self) -> list[int]:
        """The devices this node stores files for."""
        found = (
            _DEVICE_DIR.fullmatch(entry.name) for entry in self.root.iterdir() if entry.is_dir()
        )
        return sorted(int(match.group(1)) for match in found if match)

    def add_device(self, devid: int) -> None:
        """Give the node a device directory (``/dev<devid>``)."""
        (self.root / f"dev{devid}").mkdir(exist_ok=True)

    def make_server(self, address: tuple[str, int]) -> socketserver.BaseServer:
        return _NodeServer(address, self.root, self._running)

    def __repr__(self) -> str:
        state = ("hung" if self.hung else "running") if self.running else "stopped"
        return f"<StorageNode {self.url} devids={self.devids} {state}>"

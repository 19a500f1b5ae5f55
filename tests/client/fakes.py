"""Stand-ins for faults the dev MogileFS cannot produce on demand.

A :class:`ScriptedTracker` answers request lines as a test tells it to (late,
never, garbled, or with lines recorded from a real mogilefsd); a
:class:`FakeNode` is an HTTP storage node that breaks in chosen ways.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from storages_mogile.client.protocol import Request, decode_request


@dataclass
class Answer:
    """What a scripted tracker does with one request."""

    line: bytes | None  # None: never answer
    delay: float = 0.0
    close: bool = False  # close the connection after answering


@dataclass
class Received:
    connection: int
    request: Request
    raw: bytes


@dataclass
class ScriptedTracker:
    """A TCP tracker whose answers come from ``respond(request, connection_number)``."""

    respond: Callable[[Request, int], Answer]
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    closed_by_client: int = 0

    def __post_init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._server.getsockname()[1]}"
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                number = self.connections
                self._sockets.append(sock)
            threading.Thread(target=self._serve, args=(sock, number), daemon=True).start()

    def _serve(self, sock: socket.socket, number: int) -> None:
        buffer = b""
        with sock:
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    with self._lock:
                        self.closed_by_client += 1
                    return
                buffer += data
                while b"\n" in buffer:
                    raw, buffer = buffer.split(b"\n", 1)
                    request = decode_request(raw)
                    if request is None:
                        continue
                    with self._lock:
                        self.received.append(Received(number, request, raw + b"\n"))
                    answer = self.respond(request, number)
                    time.sleep(answer.delay)
                    if answer.line is not None:
                        try:
                            sock.sendall(answer.line)
                        except OSError:
                            return
                    if answer.close:
                        return

    def open_connections(self) -> int:
        """Connections the client has not closed yet."""
        with self._lock:
            return self.connections - self.closed_by_client

    def commands(self) -> list[str]:
        with self._lock:
            return [item.request.command for item in self.received]

    def close(self) -> None:
        self._server.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


def replies(*lines: str | bytes, close: bool = False) -> Callable[[Request, int], Answer]:
    """A responder answering each request with the next of ``lines`` (CRLF added)."""
    queue = [line.encode() if isinstance(line, str) else line for line in lines]
    lock = threading.Lock()

    def respond(request: Request, number: int) -> Answer:
        with lock:
            line = queue.pop(0)
        return Answer(line + b"\r\n", close=close)

    return respond


def late_first(delay: float) -> Callable[[Request, int], Answer]:
    """A get_paths responder answering its first request ``delay`` seconds
    late (path ``http://late/``), every other at once (``http://fresh/<connection>``)."""
    sent_late = threading.Event()

    def respond(request: Request, number: int) -> Answer:
        if number == 1 and not sent_late.is_set():
            sent_late.set()
            return Answer(b"OK paths=1&path1=http://late/\r\n", delay=delay)
        return Answer(f"OK paths=1&path1=http://fresh/{number}\r\n".encode())

    return respond


def stray_line(request: Request, number: int) -> Answer:
    """A responder whose first connection gets a stray line after its first
    reply; on the others get_paths answers ``http://right/``."""
    if number == 1:
        return Answer(b"OK \r\nOK paths=1&path1=http://stray/\r\n")
    return Answer(b"OK paths=1&path1=http://right/\r\n")


class SilentTracker:
    """A listening socket nobody accepts from: connects succeed, nothing answers."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=16)
        self.address = f"127.0.0.1:{self._sock.getsockname()[1]}"

    def close(self) -> None:
        self._sock.close()


@contextlib.contextmanager
def serve_handler(handler: type[socketserver.BaseRequestHandler]) -> Iterator[str]:
    """A loopback TCP server answering with ``handler`` (a fake tracker); its ``host:port``."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "{}:{}".format(*server.server_address)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port() -> str:
    """An address on which nothing listens (connections are refused)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return f"127.0.0.1:{sock.getsockname()[1]}"


class _QuietHTTPServer(ThreadingHTTPServer):
    """Clients hanging up mid-response are expected here, not worth a traceback."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class FakeNode:
    """An HTTP storage node with a chosen fault.

    ``data`` is served for every GET path. Faults: ``cut_after`` (send only
    that many body bytes, then drop the connection), ``ignore_range`` (answer
    200 with the whole file), ``get_status`` (answer GETs with this status
    and a short error body), ``put_status`` (answer PUTs with this status
    after reading ``put_read`` body bytes), ``trickle`` (send GET bodies in
    pieces of that many bytes, a millisecond apart), ``last_modified`` (the
    ``Last-Modified`` header of GETs and HEADs, as sent). Successful PUT bodies
    are kept in ``stored`` by path; ``connections`` counts the TCP connections
    accepted.
    """

    def __init__(
        self,
        data: bytes = b"",
        *,
        cut_after: int | None = None,
        ignore_range: bool = False,
        get_status: int = 200,
        put_status: int = 200,
        put_read: int | None = None,
        trickle: int | None = None,
        last_modified: str | None = None,
    ) -> None:
        self.data = data
        self.cut_after = cut_after
        self.ignore_range = ignore_range
        self.get_status = get_status
        self.put_status = put_status
        self.put_read = put_read
        self.trickle = trickle
        self.last_modified = last_modified
        self.stored: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.connections = 0
        self._server = _QuietHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        node = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def setup(self) -> None:
                node.connections += 1
                super().setup()

            def do_GET(self) -> None:
                node.requests.append(("GET", self.path, self.headers.get("Range")))
                if node.get_status != 200:
                    error = b"<h1>404 - Not Found</h1>\n"
                    self.send_response(node.get_status)
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                start = 0
                status = 200
                range_header = self.headers.get("Range")
                if range_header and not node.ignore_range:
                    first, _, last = range_header.removeprefix("bytes=").partition("-")
                    start = int(first)
                    end = int(last) if last else len(node.data) - 1
                    status = 206
                    body = node.data[start : end + 1]
                else:
                    body = node.data
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self._send_last_modified()
                if status == 206:
                    self.send_header(
                        "Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(node.data)}"
                    )
                self.end_headers()
                if node.trickle is not None:
                    for start in range(0, len(body), node.trickle):
                        self.wfile.write(body[start : start + node.trickle])
                        time.sleep(0.001)
                    return
                if node.cut_after is None:
                    self.wfile.write(body)
                    return
                self.wfile.write(body[: node.cut_after])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

            def do_HEAD(self) -> None:
                node.requests.append(("HEAD", self.path, None))
                self.send_response(200)
                self.send_header("Content-Length", str(len(node.data)))
                self._send_last_modified()
                self.end_headers()

            def _send_last_modified(self) -> None:
                if node.last_modified is not None:
                    self.send_header("Last-Modified", node.last_modified)

            def do_PUT(self) -> None:
                node.requests.append(("PUT", self.path, None))
                length = int(self.headers.get("Content-Length", "0"))
                if node.put_status >= 300:
                    self.rfile.read(min(length, node.put_read or 0))
                    self.send_response(node.put_status)
                    self.send_header("Content-Length", "0")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.close_connection = True
                    return
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    node.stored[self.path] = self._read_chunked()
                else:
                    node.stored[self.path] = self.rfile.read(length)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _read_chunked(self) -> bytes:
                body = b""
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    body += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
                return body

        return Handler

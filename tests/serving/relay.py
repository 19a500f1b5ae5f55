"""A TCP relay in front of a tracker that counts the requests passing through.

Tests and benchmarks point a storage at the relay to count its tracker
round trips for real: every request a client sends is one line, so the
number of line ends sent towards the tracker is the number of requests.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Self


class CountingRelay:
    """Relays TCP connections from a loopback port to ``target`` (``host:port``)."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self._target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._requests = 0
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, name="relay-accept", daemon=True)

    @property
    def address(self) -> str:
        """``host:port`` to give clients instead of the tracker's."""
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    @property
    def requests(self) -> int:
        """Tracker requests relayed so far."""
        with self._lock:
            return self._requests

    def start(self) -> CountingRelay:
        self._accepting.start()
        return self

    def stop(self) -> None:
        """Stop accepting, cut every relayed connection, join the threads."""
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass  # not connected: closing alone will do
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone
        self._accepting.join()
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            try:
                tracker = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, tracker))
            for source, sink, count in ((client, tracker, True), (tracker, client, False)):
                thread = threading.Thread(
                    target=self._pump, args=(source, sink, count), name="relay-pump", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket, count: bool) -> None:
        try:
            while data := source.recv(65536):
                if count:
                    with self._lock:
                        self._requests += data.count(b"\n")
                sink.sendall(data)
        except OSError:
            pass  # either side went away: end this direction
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self._lock:
                self._sockets.discard(source)
            source.close()

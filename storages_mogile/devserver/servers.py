"""Threaded socket servers that can be stopped and started on the same port.

A stopped service closes its listening socket (connects are refused) and
every open connection (clients see the peer go away), and joins its
threads. Starting it again binds the same port, with ``SO_REUSEADDR`` so
connections of the previous run left in TIME_WAIT do not block it.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from abc import ABC, abstractmethod
from typing import Any, cast

logger = logging.getLogger(__name__)


class TrackedServerMixin:
    """A threading server that knows its open connections and can drop them."""

    allow_reuse_address = True
    daemon_threads = False
    block_on_close = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)  # type: ignore[misc]

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)  # type: ignore[misc]

    def drop_connections(self) -> None:
        """Shut every open connection down; their handler threads then end."""
        self.stopping.set()
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer


class ListeningService(ABC):
    """One server socket with a thread accepting connections on it."""

    name = "service"

    def __init__(self, host: str, port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: socketserver.BaseServer | None = None
        self._thread: threading.Thread | None = None

    @abstractmethod
    def make_server(self, address: tuple[str, int]) -> socketserver.BaseServer:
        """Create the bound socket server (subclasses say which kind)."""

    @property
    def address(self) -> str:
        """``host:port`` this service listens (or listened) on."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> ListeningService:
        """Listen (again) on the service's port; a no-op if running."""
        if self._server is None:
            try:
                server = self.make_server((self.host, self.port))
            except OSError as exc:  # name the address: "Address already in use" alone does not
                raise OSError(
                    exc.errno, f"the {self.name} cannot listen on {self.address}: {exc.strerror}"
                ) from exc
            self.port = cast("tuple[str, int]", server.server_address)[1]
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"{self.name}-{self.port}",
                daemon=True,
            )
            self._server = server
            self._thread.start()
            logger.debug("%s listening on %s", self.name, self.address)
        return self

    def stop(self) -> None:
        """Stop listening, drop open connections, join all threads."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.drop_connections()  # type: ignore[attr-defined]
        server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        logger.debug("%s on %s stopped", self.name, self.address)

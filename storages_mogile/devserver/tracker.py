"""The dev tracker: mogilefsd's line protocol over TCP.

:class:`Tracker` turns one request line into one reply line (or none, for
an empty line) using the command handlers of :mod:`.files` and
:mod:`.admin`; :class:`TrackerServer` serves it to TCP clients, one thread
per connection, answering pipelined requests in order.

Replies are built with the project's protocol codec. Like mogilefsd, the
order of the arguments in an ``OK`` reply is random, so clients that depend
on it break here as they would against a real tracker.
"""

from __future__ import annotations

import logging
import random
import re
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any

from storages_mogile.client.protocol import decode_request, encode_err, encode_ok

from . import admin, files
from .errors import CommandError
from .metadata import MetadataStore
from .servers import ListeningService, TrackedServerMixin
from .usage import UsageMonitor

logger = logging.getLogger(__name__)

VERSION = "2.73"

Handler = Callable[["Tracker", dict[str, str]], "dict[str, Any] | None"]
COMMANDS: dict[str, Handler] = {**files.COMMANDS, **admin.COMMANDS}

_ADMIN = re.compile(rb"!(\S+)")
ADMIN_HELP = (
    "Dev tracker admin commands:\n"
    "\n"
    "    !version    Server version (of the protocol emulated)\n"
    "    !stats      Uptime and query counts.\n"
    "    !queue      Queries that are pending execution (never any here).\n"
    "    !jobs       Worker processes (none: the dev tracker uses threads).\n"
)


class Tracker:
    """Tracker commands over a metadata store; no sockets.

    ``on_device_created(devid, hostid)`` is called after ``create_device``
    so the cluster can give the host's node the new device directory.
    """

    def __init__(
        self, store: MetadataStore, *, on_device_created: Callable[[int, int], None] | None = None
    ) -> None:
        self.store = store
        self.usage = UsageMonitor()
        self.stopping = threading.Event()
        self.on_device_created = on_device_created
        self._started = time.monotonic()
        self._queries = 0
        self._processing = 0
        self._count_lock = threading.Lock()

    def answer(self, line: bytes) -> bytes | None:
        """The reply to one request line, or ``None`` for an empty line."""
        admin_command = _ADMIN.match(line.rstrip(b"\r\n"))
        if admin_command:
            return self.admin(admin_command.group(1).decode("ascii", "replace"))
        request = decode_request(line)
        if request is None:
            return None
        return self.run(request.command, request.args)

    def run(self, command: str, args: dict[str, str]) -> bytes:
        """Run one command and encode its reply line."""
        handler = COMMANDS.get(command)
        if handler is None:
            error = CommandError("unknown_command")
            return encode_err(error.code, error.text)
        with self._count_lock:
            self._queries += 1
            self._processing += 1
        try:
            result = handler(self, args)
        except CommandError as error:
            logger.debug("%s -> ERR %s %s", command, error.code, error.text)
            return encode_err(error.code, error.text)
        except Exception:  # a bug or a storage failure: answer, keep serving
            logger.exception("command %r failed", command)
            failure = CommandError("failure")
            return encode_err(failure.code, failure.text)
        finally:
            with self._count_lock:
                self._processing -= 1
        items = list((result or {}).items())
        random.shuffle(items)  # as mogilefsd's hash order: clients must not rely on it
        return encode_ok(dict(items))

    def admin(self, command: str) -> bytes:
        """A ``!command`` answer: text lines ended by a line holding ``.``."""
        if command == "version":
            lines = [VERSION]
        elif command == "stats":
            with self._count_lock:
                lines = [
                    f"uptime {int(time.monotonic() - self._started)}",
                    "pending_queries 0",
                    f"processing_queries {self._processing}",
                    f"queries {self._queries}",
                ]
        elif command in ("queue", "jobs"):
            lines = []
        else:
            return ADMIN_HELP.encode() + b".\r\n"
        return "".join(f"{line}\r\n" for line in lines + ["."]).encode()


class _TrackerSocketServer(TrackedServerMixin, socketserver.ThreadingTCPServer):
    def __init__(self, address: tuple[str, int], tracker: Tracker) -> None:
        self.tracker = tracker
        super().__init__(address, _TrackerConnection)


class _TrackerConnection(socketserver.StreamRequestHandler):
    """One client connection: read lines, answer each in order."""

    server: _TrackerSocketServer

    def handle(self) -> None:
        tracker = self.server.tracker
        try:
            while line := self.rfile.readline():
                if not line.endswith(b"\n"):
                    break  # the client closed mid-line: a partial request is never answered
                reply = tracker.answer(line)
                if reply is not None:
                    self.wfile.write(reply)
        except OSError as exc:
            logger.debug("tracker connection from %s ended: %s", self.client_address, exc)
        finally:
            tracker.store.release_thread()


class TrackerServer(ListeningService):
    """A tracker listening on ``host:port``; ``address`` is ``"host:port"``."""

    name = "tracker"

    def __init__(self, tracker: Tracker, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.tracker = tracker

    def make_server(self, address: tuple[str, int]) -> socketserver.BaseServer:
        return _TrackerSocketServer(address, self.tracker)

    def start(self) -> TrackerServer:
        self.tracker.stopping.clear()
        super().start()
        return self

    def stop(self) -> None:
        self.tracker.stopping.set()  # wakes handlers in ``sleep``
        super().stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<TrackerServer {self.address} {state}>"

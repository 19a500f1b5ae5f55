"""The dev tracker: mogilefsd's line protocol over TCP.

:class:`Tracker` turns one request line into one reply line (or none, for
an empty line) using the command handlers of :mod:`.files` and
:mod:`.admin`; :class:`TrackerServer` serves it to TCP clients, one thread
per connection, answering pipelined requests in order.

Replies are built with the project's protocol codec. Like mogilefsd, the
order of the arguments in an ``OK`` reply is random, so clients that depend
on it break here as they would against a real tracker.

A request can also be carried out and then answered with a closed
connection instead of a reply line, as mogilefsd does when it kills the
query worker that served it. The tracker does that for the request that
follows an ``ERR key_exists`` of ``rename`` (mogilefsd 2.73's stray second
reply, see :meth:`Tracker.answer`), and for the faults a test asks for with
:meth:`Tracker.drop_reply`; :meth:`Tracker.fail_reply` answers with an
error reply instead (mogilefsd's transient ``db`` and ``failure``).
"""

from __future__ import annotations

import logging
import random
import re
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

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


#: Longest request line read. Keys stop at 255 bytes here, but the replayed
#: recording sends a 1 MiB key (3 MiB percent-encoded) to be refused.
MAX_REQUEST_LINE = 8 << 20
_TOO_LONG = encode_err(
    "request_too_long", f"Request line longer than {MAX_REQUEST_LINE} bytes; connection closed"
)


class _Dropped:
    def __repr__(self) -> str:
        return "DROPPED"


#: What :meth:`Tracker.answer` returns for a request whose connection is to
#: be closed without a reply.
DROPPED: Final = _Dropped()


@dataclass
class _Fault:
    """A request to answer with ``reply`` instead of its own (``command`` None: any)."""

    command: str | None
    act: bool
    count: int
    reply: bytes | _Dropped


class Tracker:
    """Tracker commands over a metadata store; no sockets.

    ``on_device_created(devid, hostid)`` is called after ``create_device``
    so the cluster can give the host's node the new device directory.
    ``stray_rename_reply`` (default on) reproduces mogilefsd 2.73's double
    reply to a ``rename`` onto a taken key (see :meth:`answer`). A client
    connection idle for ``idle_timeout`` seconds is closed.
    """

    def __init__(
        self,
        store: MetadataStore,
        *,
        on_device_created: Callable[[int, int], None] | None = None,
        stray_rename_reply: bool = True,
        idle_timeout: float = 300.0,
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive seconds, not {idle_timeout}")
        self.store = store
        self.idle_timeout = idle_timeout
        self.usage = UsageMonitor()
        self.stopping = threading.Event()
        self.on_device_created = on_device_created
        self.stray_rename_reply = stray_rename_reply
        self._started = time.monotonic()
        self._queries = 0
        self._processing = 0
        self._count_lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._fault_lock = threading.Lock()

    def answer(self, line: bytes) -> bytes | _Dropped | None:
        """The reply to one request line: ``None`` for an empty line, DROPPED
        when the connection is to be closed without a reply.

        After a ``rename`` answered ``key_exists``, mogilefsd's query worker
        sends a second, stray ``OK``; the ProcManager reads it while the
        worker serves the next request (of any client), kills the worker and
        closes that client's connection. The request was carried out, its
        reply is lost. Here that happens to the next request every time,
        not only when the timing is unlucky, so clients meet it in tests.
        """
        admin_command = _ADMIN.match(line.rstrip(b"\r\n"))
        if admin_command:
            return self.admin(admin_command.group(1).decode("ascii", "replace"))
        request = decode_request(line)
        if request is None:
            return None
        fault = self._take_fault(request.command)
        if fault is not None and not fault.act:
            return fault.reply
        reply = self.run(request.command, request.args)
        if (
            self.stray_rename_reply
            and request.command == "rename"
            and reply.startswith(b"ERR key_exists ")
        ):
            self.drop_reply()
        return fault.reply if fault is not None else reply

    def drop_reply(self, command: str | None = None, *, act: bool = True, count: int = 1) -> None:
        """Close the connection of the next ``count`` requests of ``command``
        (of any command when None) instead of replying.

        With ``act`` the request is carried out first (its reply is lost),
        without it the request is discarded unread. For fault tests.
        """
        self._add_fault(_Fault(command, act, count, DROPPED))

    def fail_reply(
        self, command: str | None = None, code: str = "db", *, act: bool = False, count: int = 1
    ) -> None:
        """Answer the next ``count`` requests of ``command`` (of any command
        when None) with ``ERR <code>`` and mogilefsd's text for it.

        mogilefsd answers ``ERR db Database error`` when a query fails on
        its database, and ``ERR failure Operation failed`` when a command
        dies (a lost database connection, a deadlock under load). With
        ``act`` the request is carried out first, as when a command fails
        after its work. For fault tests.
        """
        error = CommandError(code)
        self._add_fault(_Fault(command, act, count, encode_err(error.code, error.text)))

    def pending_faults(self) -> int:
        """How many requests the pending :meth:`drop_reply` and :meth:`fail_reply` still apply to."""
        with self._fault_lock:
            return sum(fault.count for fault in self._faults)

    def cancel_faults(self) -> None:
        """Forget every pending :meth:`drop_reply` and :meth:`fail_reply`."""
        with self._fault_lock:
            self._faults.clear()

    def _add_fault(self, fault: _Fault) -> None:
        if fault.count < 1:
            raise ValueError(f"count must be at least 1, not {fault.count}")
        with self._fault_lock:
            self._faults.append(fault)

    def _take_fault(self, command: str) -> _Fault | None:
        """The first pending fault that applies to ``command``, used up once."""
        with self._fault_lock:
            for fault in self._faults:
                if fault.command in (None, command):
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
        return None

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
    """One client connection: read lines, answer each in order.

    A line longer than :data:`MAX_REQUEST_LINE` is refused and the
    connection closed; a connection idle for the tracker's ``idle_timeout``
    is closed, so no client holds a thread (or memory) without bound.
    """

    server: _TrackerSocketServer

    def setup(self) -> None:
        self.timeout = self.server.tracker.idle_timeout  # read by StreamRequestHandler.setup
        super().setup()

    def handle(self) -> None:
        tracker = self.server.tracker
        try:
            while line := self.rfile.readline(MAX_REQUEST_LINE + 1):
                if len(line) > MAX_REQUEST_LINE:
                    self.wfile.write(_TOO_LONG)
                    break
                if not line.endswith(b"\n"):
                    break  # the client closed mid-line: a partial request is never answered
                reply = tracker.answer(line)
                if reply is DROPPED:
                    logger.info(
                        "tracker closes the connection of %s without a reply", self.client_address
                    )
                    break
                if isinstance(reply, bytes):
                    self.wfile.write(reply)
        except OSError as exc:  # TimeoutError too: idle for idle_timeout
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

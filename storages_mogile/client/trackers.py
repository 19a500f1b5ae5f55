"""Talking to MogileFS trackers: connections, failover and retries.

A :class:`TrackerPool` sends one request line and reads one reply line. Each
thread keeps one persistent connection (a forked child opens its own). The
rules it follows when something breaks are written once, without I/O, in
:mod:`.core` (which the asyncio pool of :mod:`.aio` drives too):

* A tracker that cannot be reached, or that fails before the request was
  completely sent, is skipped and the next one is tried; that is safe for
  every command because the tracker never saw a whole request line.
* Once the request line is out, a failure (timeout, closed connection, a
  reply that is not ``OK``/``ERR``) loses the reply, but not the outcome:
  commands in :data:`~.core.IDEMPOTENT` and ``create_open`` (an unused fid is
  reaped by the tracker) are sent again, to the next tracker (the same one
  on a new connection when it is the only one left). The others
  (``create_close``, ``rename``, the admin ``create_*`` and ``delete_*``)
  come with a *settle* function from their caller that asks the trackers
  whether the request took effect; if it did not, it is sent again. Only
  when no tracker can be asked does the caller get a
  :class:`TrackerUnavailableError` saying that the outcome is unknown.
* A resent command whose first attempt may have done the work already takes
  the error that says so as success: ``unknown_key`` for ``delete``,
  ``domain_exists`` for ``create_domain``, and so on (:data:`~.core.DONE_ON_RESEND`).
* A connection that timed out, failed, carried anything besides the one
  expected reply line, or was left waiting for a reply (an exception from a
  signal handler interrupted the call) is closed and never reused, so a late
  reply can never be read as the answer to a later command.
* An ``ERR db`` or ``ERR failure`` reply (:data:`~.core.TRANSIENT`: mogilefsd's
  answers to a failed database query or a command that died, which under
  load pass) is treated as a lost reply whose request ended: the request is
  settled or sent again in the same way, to the next tracker, after a pause
  that doubles from :data:`~.core.TRANSIENT_PAUSE`, at most
  :data:`~.core.MAX_TRANSIENT_ERRORS` times; then the error is raised. A command
  that is neither resendable nor settleable gets the error at once.
* A failed tracker rests for ``backoff`` seconds: it is tried only after all
  others, and only if they fail too.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping

from urllib3.util import wait_for_read

from ..digits import parse_digits
from . import guard
from .core import (
    Lost,
    ReplyLines,
    Roster,
    Stage,
    TrackerRequest,
    Unsent,
    no_reply,
    run_steps,
)
from .errors import TrackerUnavailableError
from .protocol import ProtocolError, Reply

#: Asks the trackers whether a request whose reply was lost took effect:
#: True if it did, False if it did not (then it is sent again); it raises
#: the command's own error when the answer shows it can never succeed.
Settle = Callable[[], bool]

_RECV_SIZE = 65536


def parse_trackers(trackers: str | Iterable[str]) -> list[str]:
    """Tracker addresses as a list of ``host:port`` strings.

    Accepts a list or a comma-separated string; raises ValueError for an
    empty list or an address without a numeric port.
    """
    items = trackers.split(",") if isinstance(trackers, str) else list(trackers)
    addresses = [item.strip() for item in items if item and item.strip()]
    if not addresses:
        raise ValueError("no MogileFS trackers given: pass 'host:port' addresses")
    for address in addresses:
        split_address(address)
    return addresses


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6addr]:port``) as a ``(host, port)`` pair."""
    host, sep, port = address.rpartition(":")
    number = parse_digits(port)
    if not sep or not host or number is None:
        raise ValueError(f"invalid tracker address {address!r}: expected 'host:port'")
    return host.strip("[]"), number


class TrackerConnection:
    """One socket to one tracker, exchanging one line for one line."""

    def __init__(self, address: str, *, connect_timeout: float, timeout: float) -> None:
        guard.check_tracker(address)
        self.address = address
        self.pid = os.getpid()
        self._timeout = timeout
        self._lines = ReplyLines()
        self._sock = socket.create_connection(split_address(address), timeout=connect_timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def usable(self) -> bool:
        """Whether this connection can carry the next request.

        Not after a fork, not while the reply to an interrupted exchange is
        still owed, and not when the tracker has closed it or sent something
        nobody asked for (both show as a readable socket).
        """
        return (
            self.pid == os.getpid()
            and self._sock.fileno() != -1  # not closed by TrackerPool.close()
            and self._lines.idle
            and not wait_for_read(self._sock, 0)
        )

    def send(self, line: bytes) -> None:
        """Send one request line."""
        self._lines.sent()
        self._sock.settimeout(self._timeout)
        self._sock.sendall(line)

    def read_reply(self) -> Reply:
        """Read and decode one reply line, waiting at most ``timeout`` seconds."""
        deadline = time.monotonic() + self._timeout
        while (reply := self._lines.reply()) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise no_reply(self._timeout)
            self._sock.settimeout(remaining)
            try:
                self._lines.feed(self._sock.recv(_RECV_SIZE))
            except TimeoutError:
                raise no_reply(self._timeout) from None
        return reply

    def close(self) -> None:
        """Close the socket (in a forked child this leaves the parent's intact)."""
        self._sock.close()

    def __del__(self) -> None:
        # A thread's connection goes when the thread ends (threading.local):
        # close it rather than leave the socket to the garbage collector.
        sock = getattr(self, "_sock", None)
        if sock is not None:
            sock.close()


class BasePool:
    """What the blocking and the asyncio pools share: the trackers, their
    timeouts, and the rules of each request (:class:`~.core.TrackerRequest`)."""

    def __init__(
        self,
        trackers: str | Iterable[str],
        *,
        connect_timeout: float = 3.0,
        timeout: float = 10.0,
        backoff: float = 5.0,
    ) -> None:
        self.roster = Roster(parse_trackers(trackers), backoff=backoff)
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._lock = threading.Lock()

    @property
    def trackers(self) -> list[str]:
        """The trackers' ``host:port`` addresses."""
        return self.roster.trackers

    def _request(
        self,
        command: str,
        args: Mapping[str, str | int | None],
        settle: object | None,
        *,
        patient: bool,
    ) -> TrackerRequest:
        """The rules of sending ``command``, once every tracker passed the guard."""
        guard.check_trackers(self.trackers)  # all of them: a refusal is never left to chance
        return TrackerRequest(
            self.roster, command, args, settle=settle, timeout=self.timeout, patient=patient
        )


class TrackerPool(BasePool):
    """Sends tracker requests over per-thread connections, with failover.

    It drives :class:`~.core.TrackerRequest` (the rules) with blocking
    sockets: it is the transport of its effects. The settings are
    :class:`BasePool`'s.
    """

    def __init__(self, trackers: str | Iterable[str], **settings: float) -> None:
        super().__init__(trackers, **settings)
        self._local = threading.local()
        self._open: weakref.WeakSet[TrackerConnection] = weakref.WeakSet()

    def call(
        self,
        command: str,
        args: Mapping[str, str | int | None],
        *,
        settle: Settle | None = None,
        patient: bool = True,
    ) -> dict[str, str]:
        """Send ``command`` and return the ``OK`` reply's arguments.

        ``settle`` finds out whether the request took effect when its reply
        is lost; commands that are not :data:`~.core.RESENDABLE` need one to
        be sent again. A request sent again after a lost reply and refused
        waits for the lost attempt (see :class:`~.core.TrackerRequest`) unless
        not ``patient``: the refusal is then raised at once. Raises the
        TrackerError subclass matching an ``ERR`` reply, or
        TrackerUnavailableError when no tracker answered.
        """
        current = getattr(self._local, "connection", None)
        request = self._request(command, args, settle, patient=patient)
        return run_steps(request.steps(current and current.address), self)

    def exchange(self, address: str, line: bytes) -> Reply | Unsent | Lost:
        """One request line and its reply, on this thread's connection to ``address``."""
        stage = Stage()
        try:
            connection = self._connection(address)
            stage.sending()
            connection.send(line)
            stage.receiving()
            return connection.read_reply()
        except (OSError, ProtocolError) as exc:
            return stage.failed(exc)

    def drop(self) -> None:
        """Close this thread's connection; the next call opens a new one."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()

    def pause(self, seconds: float) -> None:
        time.sleep(seconds)

    def ask(self, settle: Settle) -> bool | TrackerUnavailableError:
        """``settle()``, or the TrackerUnavailableError it raised."""
        try:
            return settle()
        except TrackerUnavailableError as exc:
            return exc

    def close(self) -> None:
        """Close the tracker connections of every thread; later calls open new ones."""
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            connection.close()
        self._local.connection = None

    def _connection(self, address: str) -> TrackerConnection:
        """This thread's connection to ``address``, opened anew unless reusable."""
        connection = getattr(self._local, "connection", None)
        if connection is not None and connection.address == address and connection.usable():
            return connection
        self.drop()
        connection = TrackerConnection(
            address, connect_timeout=self.connect_timeout, timeout=self.timeout
        )
        with self._lock:
            self._open.add(connection)
        self._local.connection = connection
        return connection

"""Talking to MogileFS trackers: connections, failover and retries.

A :class:`TrackerPool` sends one request line and reads one reply line. Each
thread keeps one persistent connection (a forked child opens its own). The
rules it follows when something breaks:

* A tracker that cannot be reached, or that fails before the request was
  completely sent, is skipped and the next one is tried; that is safe for
  every command because the tracker never saw a whole request line.
* Once the request line is out, a failure (timeout, closed connection, a
  reply that is not ``OK``/``ERR``) loses the reply, but not the outcome:
  commands in :data:`IDEMPOTENT` and ``create_open`` (an unused fid is
  reaped by the tracker) are sent again, to the next tracker (the same one
  on a new connection when it is the only one left). The others
  (``create_close``, ``rename``, the admin ``create_*`` and ``delete_*``)
  come with a *settle* function from their caller that asks the trackers
  whether the request took effect; if it did not, it is sent again. Only
  when no tracker can be asked does the caller get a
  :class:`TrackerUnavailableError` saying that the outcome is unknown.
* A resent command whose first attempt may have done the work already takes
  the error that says so as success: ``unknown_key`` for ``delete``,
  ``domain_exists`` for ``create_domain``, and so on (:data:`DONE_ON_RESEND`).
* A connection that timed out, failed, carried anything besides the one
  expected reply line, or was left waiting for a reply (an exception from a
  signal handler interrupted the call) is closed and never reused, so a late
  reply can never be read as the answer to a later command.
* An ``ERR db`` or ``ERR failure`` reply (:data:`TRANSIENT`: mogilefsd's
  answers to a failed database query or a command that died, which under
  load pass) is treated as a lost reply whose request ended: the request is
  settled or sent again in the same way, to the next tracker, after a pause
  that doubles from :data:`TRANSIENT_PAUSE`, at most
  :data:`MAX_TRANSIENT_ERRORS` times; then the error is raised. A command
  that is neither resendable nor settleable gets the error at once.
* A failed tracker rests for ``backoff`` seconds: it is tried only after all
  others, and only if they fail too.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping

from urllib3.util import wait_for_read

from ..digits import parse_digits
from . import guard
from .errors import TrackerUnavailableError, tracker_error
from .protocol import ProtocolError, Reply, decode_reply, encode_request

logger = logging.getLogger(__name__)

# Commands whose repetition does no harm: they read, or set a value that a
# second identical request sets again.
IDEMPOTENT = frozenset(
    {
        "noop",
        "get_paths",
        "file_info",
        "file_debug",
        "list_keys",
        "list_fids",
        "get_domains",
        "get_hosts",
        "get_devices",
        "server_settings",
        "updateclass",
        "update_class",
        "update_host",
        "set_state",
        "set_weight",
        "delete",
    }
)

# How often one request may lose its reply before the call gives up. A
# closed connection costs little to retry, and mogilefsd closes one for
# every stray reply (a burst of renames onto a taken key closes a burst of
# connections); timeouts are limited further, to one per tracker (two for a
# lone tracker).
MAX_LOST_REPLIES = 8

#: Error codes of a tracker that failed, not of a request that is wrong:
#: ``db`` (a query failed: a lock timeout, a deadlock, a lost database
#: connection) and ``failure`` (the command died on such an error).
TRANSIENT = frozenset({"db", "failure"})

#: How often one request may be answered with a TRANSIENT error before the
#: error is raised, and the first pause (seconds, doubling) before the next try.
MAX_TRANSIENT_ERRORS = 4
TRANSIENT_PAUSE = 0.05

# Not idempotent, but safe to send again: the tracker reaps an unused fid.
RESENDABLE = IDEMPOTENT | {"create_open"}

# Error codes that mean "already done" when they answer a resent command
# (the lost first attempt did it; a tracker whose cache lags may not show it).
DONE_ON_RESEND: Mapping[str, frozenset[str]] = {
    "delete": frozenset({"unknown_key"}),
    "create_domain": frozenset({"domain_exists"}),
    "create_class": frozenset({"class_exists"}),
    "create_host": frozenset({"host_exists"}),
    "create_device": frozenset({"existing_devid"}),
    "delete_domain": frozenset({"domain_not_found"}),
    "delete_class": frozenset({"class_not_found"}),
    "delete_host": frozenset({"unknown_host"}),
}

#: Asks the trackers whether a request whose reply was lost took effect:
#: True if it did, False if it did not (then it is sent again); it raises
#: the command's own error when the answer shows it can never succeed.
Settle = Callable[[], bool]

_RECV_SIZE = 65536

#: Longest reply line accepted. The longest real replies (a list_keys page
#: of 1000 keys of 255 bytes, every byte percent-encoded) are under 1 MiB.
MAX_REPLY_BYTES = 4 << 20


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


class _NotSent(Exception):
    """The request line did not (completely) leave: safe to send elsewhere."""


class _NoReply(Exception):
    """The request went out but no valid reply came back: outcome unknown.

    ``timed_out`` tells a silent tracker (each try costs the whole timeout)
    from a connection closed or garbled at once.
    """

    def __init__(self, reason: str, *, timed_out: bool) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


class TrackerConnection:
    """One socket to one tracker, exchanging one line for one line."""

    def __init__(self, address: str, *, connect_timeout: float, timeout: float) -> None:
        guard.check_tracker(address)
        self.address = address
        self.pid = os.getpid()
        self._timeout = timeout
        self._buffer = bytearray()
        self._awaiting_reply = False
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
            and not self._awaiting_reply
            and not self._buffer
            and not wait_for_read(self._sock, 0)
        )

    def send(self, line: bytes) -> None:
        """Send one request line."""
        self._awaiting_reply = True
        self._sock.settimeout(self._timeout)
        self._sock.sendall(line)

    def read_reply(self) -> Reply:
        """Read and decode one reply line, waiting at most ``timeout`` seconds."""
        deadline = time.monotonic() + self._timeout
        scanned = 0
        while (end := self._buffer.find(b"\n", scanned)) < 0:
            scanned = len(self._buffer)
            if scanned > MAX_REPLY_BYTES:
                raise ProtocolError(
                    f"reply line longer than {MAX_REPLY_BYTES} bytes, starting "
                    f"{bytes(self._buffer[:100])!r}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no reply within {self._timeout:g} s")
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(_RECV_SIZE)
            except TimeoutError:
                raise TimeoutError(f"no reply within {self._timeout:g} s") from None
            if not chunk:
                raise ConnectionError("tracker closed the connection")
            self._buffer += chunk
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        self._awaiting_reply = False
        return decode_reply(line)

    def close(self) -> None:
        """Close the socket (in a forked child this leaves the parent's intact)."""
        self._sock.close()

    def __del__(self) -> None:
        # A thread's connection goes when the thread ends (threading.local):
        # close it rather than leave the socket to the garbage collector.
        sock = getattr(self, "_sock", None)
        if sock is not None:
            sock.close()


class TrackerPool:
    """Sends tracker requests over per-thread connections, with failover."""

    def __init__(
        self,
        trackers: str | Iterable[str],
        *,
        connect_timeout: float = 3.0,
        timeout: float = 10.0,
        backoff: float = 5.0,
    ) -> None:
        self.trackers = parse_trackers(trackers)
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.backoff = backoff
        self._resting_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._open: weakref.WeakSet[TrackerConnection] = weakref.WeakSet()

    def call(
        self,
        command: str,
        args: Mapping[str, str | int | None],
        *,
        settle: Settle | None = None,
    ) -> dict[str, str]:
        """Send ``command`` and return the ``OK`` reply's arguments.

        ``settle`` finds out whether the request took effect when its reply
        is lost; commands that are not :data:`RESENDABLE` need one to be
        sent again. Raises the TrackerError subclass matching an ``ERR``
        reply, or TrackerUnavailableError when no tracker answered.
        """
        guard.check_trackers(self.trackers)  # all of them: a refusal is never left to chance
        line = encode_request(command, dict(args))
        attempts: list[tuple[str, str]] = []
        pending = self._order()
        sends = timeouts = 0  # requests that went out and lost their reply; by timing out
        errors = 0  # TRANSIENT error replies
        while pending:
            address = pending.pop(0)
            try:
                reply = self._exchange(address, line)
            except _NotSent as exc:
                self._fail(address, attempts, str(exc))
                continue
            except _NoReply as exc:
                self._fail(address, attempts, str(exc))
                sends += 1
                timeouts += exc.timed_out
                if self._took_effect(command, args, settle, attempts):
                    return {}
                if timeouts >= max(2, len(self.trackers)) or sends >= MAX_LOST_REPLIES:
                    break
                pending.append(address)  # after the others, on a new connection
                continue
            if self._transient(command, reply, settle, errors):
                self._fail(address, attempts, f"ERR {reply.code} {reply.message}")
                if self._took_effect(command, args, settle, attempts):
                    return {}
                time.sleep(TRANSIENT_PAUSE * 2**errors)
                errors += 1
                pending.append(address)
                continue
            if (
                not reply.ok
                and (sends or errors)
                and self._done_before(command, args, reply, settle, attempts, waiting=sends > 0)
            ):
                return {}
            return self._answer(command, args, address, reply)
        tried = "; ".join(f"{address}: {reason}" for address, reason in attempts)
        raise TrackerUnavailableError(
            f"{command}{_describe(args)}: no tracker answered (tried {tried})", attempts
        )

    @staticmethod
    def _transient(command: str, reply: Reply, settle: Settle | None, errors: int) -> bool:
        """Whether ``reply`` is a TRANSIENT error to try the request again after."""
        return (
            not reply.ok
            and reply.code in TRANSIENT
            and errors < MAX_TRANSIENT_ERRORS
            and (command in RESENDABLE or settle is not None)
        )

    def _took_effect(
        self,
        command: str,
        args: Mapping[str, str | int | None],
        settle: Settle | None,
        attempts: list[tuple[str, str]],
    ) -> bool:
        """After a lost reply: whether the request is known to have taken effect.

        False means it may be sent again; an outcome that cannot be found
        out raises TrackerUnavailableError.
        """
        if command in RESENDABLE:
            return False
        if settle is None:
            raise self._unknown_outcome(command, args, attempts, "it is not idempotent")
        done = self._ask(command, args, settle, attempts)
        logger.info(
            "%s%s got no answer (%s) and %s",
            command,
            _describe(args),
            attempts[-1][1],
            "had taken effect" if done else "had not taken effect: sending it again",
        )
        return done

    def _done_before(
        self,
        command: str,
        args: Mapping[str, str | int | None],
        reply: Reply,
        settle: Settle | None,
        attempts: list[tuple[str, str]],
        *,
        waiting: bool,
    ) -> bool:
        """Whether a resent command was refused because an earlier attempt did the work.

        A lost attempt may still be running on its tracker (mogilefsd's
        killed worker finishes the request it has; a stopping tracker too),
        so with ``waiting`` ``settle`` is asked until it says yes or as long
        as the reply to that attempt would have been waited for; an attempt
        answered with an error has ended, and ``settle`` is asked once.
        """
        if reply.code in DONE_ON_RESEND.get(command, ()):
            logger.info(
                "%s%s sent again answered %s: done already", command, _describe(args), reply.code
            )
            return True
        if settle is None:
            return False
        deadline = time.monotonic() + (self.timeout if waiting else 0)
        pause = 0.02
        while not self._ask(command, args, settle, attempts):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.5)
        return True

    def _ask(
        self,
        command: str,
        args: Mapping[str, str | int | None],
        settle: Settle,
        attempts: list[tuple[str, str]],
    ) -> bool:
        """``settle()``; TrackerUnavailableError saying what is known if no tracker answers it."""
        try:
            return settle()
        except TrackerUnavailableError as exc:
            raise self._unknown_outcome(
                command, args, attempts, f"no tracker could be asked whether it did ({exc})"
            ) from exc

    def _exchange(self, address: str, line: bytes) -> Reply:
        """One request line and its reply, on this thread's connection to ``address``."""
        try:
            connection = self._connection(address)
        except OSError as exc:
            raise _NotSent(f"connect failed: {exc}") from exc
        try:
            connection.send(line)
        except OSError as exc:
            raise _NotSent(f"send failed: {exc}") from exc
        try:
            reply = connection.read_reply()
        except (OSError, ProtocolError) as exc:
            raise _NoReply(str(exc), timed_out=isinstance(exc, TimeoutError)) from exc
        self._recovered(address)
        return reply

    def _answer(
        self,
        command: str,
        args: Mapping[str, str | int | None],
        address: str,
        reply: Reply,
    ) -> dict[str, str]:
        """The arguments of an ``OK`` reply; the typed error for an ``ERR``."""
        if reply.ok:
            return reply.args
        raise tracker_error(
            reply.code,
            reply.message,
            command=command,
            tracker=address,
            key=_subject_key(args),
            domain=_str_or_none(args.get("domain")),
        )

    def close(self) -> None:
        """Close the tracker connections of every thread; later calls open new ones."""
        with self._lock:
            connections = list(self._open)
        for connection in connections:
            connection.close()
        self._local.connection = None

    def _drop(self) -> None:
        """Close this thread's connection; the next call opens a new one."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()

    def _order(self) -> list[str]:
        """Trackers to try: the connected one, the others at random, resting ones last."""
        now = time.monotonic()
        with self._lock:
            resting = {a for a in self.trackers if self._resting_until.get(a, 0.0) > now}
        ready = [a for a in self.trackers if a not in resting]
        later = [a for a in self.trackers if a in resting]
        random.shuffle(ready)
        random.shuffle(later)
        current = getattr(self._local, "connection", None)
        if current is not None and current.address in ready:
            ready.remove(current.address)
            ready.insert(0, current.address)
        return ready + later

    def _connection(self, address: str) -> TrackerConnection:
        """This thread's connection to ``address``, opened anew unless reusable."""
        connection = getattr(self._local, "connection", None)
        if connection is not None and connection.address == address and connection.usable():
            return connection
        self._drop()
        connection = TrackerConnection(
            address, connect_timeout=self.connect_timeout, timeout=self.timeout
        )
        with self._lock:
            self._open.add(connection)
        self._local.connection = connection
        return connection

    def _fail(self, address: str, attempts: list[tuple[str, str]], reason: str) -> None:
        """Drop the connection, rest the tracker and remember why."""
        self._drop()
        with self._lock:
            self._resting_until[address] = time.monotonic() + self.backoff
        attempts.append((address, reason))
        logger.warning("MogileFS tracker %s failed: %s", address, reason)

    def _recovered(self, address: str) -> None:
        with self._lock:
            self._resting_until.pop(address, None)

    def _unknown_outcome(
        self,
        command: str,
        args: Mapping[str, str | int | None],
        attempts: list[tuple[str, str]],
        why: str,
    ) -> TrackerUnavailableError:
        address, reason = attempts[-1]
        return TrackerUnavailableError(
            f"{command}{_describe(args)} was sent to tracker {address} but got no answer "
            f"({reason}); it may or may not have taken effect, and it is not sent again "
            f"because {why}",
            attempts,
        )


def _str_or_none(value: str | int | None) -> str | None:
    return None if value is None else str(value)


def _subject_key(args: Mapping[str, str | int | None]) -> str | None:
    return _str_or_none(args.get("key", args.get("from_key")))


def _describe(args: Mapping[str, str | int | None]) -> str:
    key = _subject_key(args)
    return f" for key {key!r}" if key is not None else ""

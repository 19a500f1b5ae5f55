"""The rules of tracker requests, written once and without I/O.

A request's way through the trackers is a generator (:class:`TrackerRequest`)
that yields what it needs done and is sent back what came of it, in the
manner of h11 and httpcore: it never touches a socket, a clock's sleep or a
callback, so the blocking :class:`~.trackers.TrackerPool` and the asyncio
:class:`~.aio.AsyncTrackerPool` drive the same rules. It yields:

* :class:`Exchange`: send the request line to a tracker and read the reply
  line; answered with the :class:`~.protocol.Reply`, :class:`Unsent` or
  :class:`Lost`.
* :class:`Drop`: close the connection the request used; it failed.
* :class:`Pause`: wait that many seconds.
* :class:`Ask`: call the caller's settle function; answered with its
  ``bool``, or the TrackerUnavailableError it raised.

Each yields its part through ``effect.via(transport)``, a method of the
transport of the same name; :func:`run_steps` and the transports' loops
feed the answers back. The rules (see :mod:`.trackers` for what they
mean to a caller):

* A tracker that cannot be reached, or that fails before the request was
  completely sent (:class:`Unsent`), is skipped and the next one is tried.
* After a lost reply (:class:`Lost`), :data:`RESENDABLE` commands are sent
  again, to the next tracker (the same one on a new connection when it is
  the only one left); the others are settled with the caller's settle
  function and sent again if they did not take effect.
* A resent command refused with an error of :data:`DONE_ON_RESEND`, or
  whose settle function says it took effect, has succeeded.
* :data:`TRANSIENT` error replies are settled or sent again, to the next
  tracker, after a pause that doubles from :data:`TRANSIENT_PAUSE`, at most
  :data:`MAX_TRANSIENT_ERRORS` times.
* A failed tracker rests for ``backoff`` seconds (:class:`Roster`).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

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

# Error codes that answer a resent command because an earlier attempt, which
# ended in a TRANSIENT error, had taken what the command needs: that error
# is then the answer. mogilefsd's create_close takes the upload's temp file
# first; if it dies after that (SQLite: two closes of one key deleting its
# old file at once), a second close finds no temp file.
TAKEN_BY_FAILED_ATTEMPT: Mapping[str, frozenset[str]] = {
    "create_close": frozenset({"no_temp_file"}),
}

#: Longest reply line accepted. The longest real replies (a list_keys page
#: of 1000 keys of 255 bytes, every byte percent-encoded) are under 1 MiB.
MAX_REPLY_BYTES = 4 << 20

# The first pause (seconds, doubling to at most SETTLE_PAUSE_MAX) between
# two questions to a settle function waiting for a lost attempt.
SETTLE_PAUSE = 0.02
SETTLE_PAUSE_MAX = 0.5

T = TypeVar("T")
Args = Mapping[str, str | int | None]


@dataclass(frozen=True)
class Unsent:
    """The request line did not (completely) leave: safe to send elsewhere."""

    reason: str


@dataclass(frozen=True)
class Lost:
    """The request went out but no valid reply came back: outcome unknown.

    ``timed_out`` tells a silent tracker (each try costs the whole timeout)
    from a connection closed or garbled at once.
    """

    reason: str
    timed_out: bool


class Stage:
    """How far an exchange got, which tells what its failure means.

    A failure while connecting or sending is :class:`Unsent` (the tracker
    never saw a whole request line); one while receiving is :class:`Lost`.
    """

    def __init__(self) -> None:
        self._name = "connect"

    def sending(self) -> None:
        self._name = "send"

    def receiving(self) -> None:
        self._name = "receive"

    def failed(self, exc: OSError | ProtocolError) -> Unsent | Lost:
        """The outcome of an exchange that raised ``exc`` at this stage."""
        if self._name == "receive":
            return Lost(str(exc), timed_out=isinstance(exc, TimeoutError))
        return Unsent(f"{self._name} failed: {exc}")


def no_reply(timeout: float) -> TimeoutError:
    """The error of a reply that took longer than ``timeout`` seconds."""
    return TimeoutError(f"no reply within {timeout:g} s")


@dataclass(frozen=True)
class Exchange:
    """Send ``line`` to ``address`` and read one reply line."""

    address: str
    line: bytes

    def via(self, transport: Any) -> Any:
        return transport.exchange(self.address, self.line)


@dataclass(frozen=True)
class Drop:
    """Close the connection the request used: it failed, and is never reused."""

    def via(self, transport: Any) -> Any:
        return transport.drop()


@dataclass(frozen=True)
class Pause:
    """Wait ``seconds`` before going on."""

    seconds: float

    def via(self, transport: Any) -> Any:
        return transport.pause(self.seconds)


@dataclass(frozen=True)
class Ask:
    """Ask the caller's ``settle`` function whether the request took effect."""

    settle: Any

    def via(self, transport: Any) -> Any:
        return transport.ask(self.settle)


Effect = Exchange | Drop | Pause | Ask
Outcome = Reply | Unsent | Lost | bool | TrackerUnavailableError | None


class Steps(Generic[T]):
    """A generator of effects, stepped by a transport: ``send`` the outcome of
    the last effect, get the next one, ``None`` once ``result`` is there.

    The effects are this module's, or :mod:`.reading`'s for storage nodes.
    """

    def __init__(self, generator: Generator[Any, Any, T]) -> None:
        self._generator = generator
        self.result: T

    def send(self, outcome: Any) -> Any:
        try:
            return self._generator.send(outcome)
        except StopIteration as done:
            self.result = done.value
            return None


def run_steps(steps: Steps[T], transport: Any) -> T:
    """Drive ``steps`` with a blocking ``transport``; their result."""
    effect = steps.send(None)
    while effect is not None:
        effect = steps.send(effect.via(transport))
    return steps.result


async def arun_steps(steps: Steps[T], transport: Any) -> T:
    """Drive ``steps`` with an asyncio ``transport`` (its methods are coroutines); their result."""
    effect = steps.send(None)
    while effect is not None:
        effect = steps.send(await effect.via(transport))
    return steps.result


class ReplyLines:
    """The bytes a tracker connection received, cut into reply lines.

    A connection is :attr:`idle` (fit for the next request) only when no
    reply is owed to it, nothing stray arrived and the tracker did not
    close it: a late reply must never answer a later request.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0
        self._eof = False
        self.awaiting = False

    @property
    def idle(self) -> bool:
        return not self.awaiting and not self._buffer and not self._eof

    def sent(self) -> None:
        """A request line is going out: its reply is owed from now on."""
        self.awaiting = True

    def feed(self, data: bytes) -> None:
        """Bytes received; ``b""`` when the tracker closed the connection."""
        if data:
            self._buffer += data
        else:
            self._eof = True

    def reply(self) -> Reply | None:
        """The next reply line, decoded; ``None`` until it is complete.

        ConnectionError when the tracker closed the connection first,
        ProtocolError for a line longer than :data:`MAX_REPLY_BYTES` or one
        that is no reply.
        """
        end = self._buffer.find(b"\n", self._scanned)
        if end < 0:
            self._scanned = len(self._buffer)
            if self._scanned > MAX_REPLY_BYTES:
                raise ProtocolError(
                    f"reply line longer than {MAX_REPLY_BYTES} bytes, starting "
                    f"{bytes(self._buffer[:100])!r}"
                )
            if self._eof:
                raise ConnectionError("tracker closed the connection")
            return None
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        self._scanned = 0
        self.awaiting = False
        return decode_reply(line)


class Roster:
    """The trackers of a pool, and which of them rest after failing.

    Shared by every thread and event loop using the pool.
    """

    def __init__(self, trackers: list[str], *, backoff: float) -> None:
        self.trackers = trackers
        self.backoff = backoff
        self._resting_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def order(self, current: str | None) -> list[str]:
        """Trackers to try: ``current`` (connected to), the others at random,
        resting ones last."""
        now = time.monotonic()
        with self._lock:
            resting = {a for a in self.trackers if self._resting_until.get(a, 0.0) > now}
        ready = [a for a in self.trackers if a not in resting]
        later = [a for a in self.trackers if a in resting]
        random.shuffle(ready)
        random.shuffle(later)
        if current is not None and current in ready:
            ready.remove(current)
            ready.insert(0, current)
        return ready + later

    def rest(self, address: str) -> None:
        """``address`` failed: try it after the others for ``backoff`` seconds."""
        with self._lock:
            self._resting_until[address] = time.monotonic() + self.backoff

    def recovered(self, address: str) -> None:
        """``address`` answered."""
        with self._lock:
            self._resting_until.pop(address, None)


class TrackerRequest:
    """One request's way through the trackers (see the module's rules).

    ``settle`` is the caller's function that finds out whether the request
    took effect after its reply was lost (asked with :class:`Ask`; a plain
    or an async function, for the transport to call), ``None`` for none;
    ``timeout`` is how long a reply is waited for,
    which is also how long a lost attempt may still be running. A request
    sent again after a lost reply and refused waits that long for the lost
    attempt (:meth:`_done_before`) unless not ``patient``: the refusal is
    then the answer at once.
    """

    def __init__(
        self,
        roster: Roster,
        command: str,
        args: Args,
        *,
        settle: object | None,
        timeout: float,
        patient: bool,
    ) -> None:
        self.roster = roster
        self.command = command
        self.args = args
        self.settle = settle
        self.timeout = timeout
        self.patient = patient
        self.line = encode_request(command, dict(args))
        self.attempts: list[tuple[str, str]] = []

    def steps(self, current: str | None) -> Steps[dict[str, str]]:
        """The request as steps, starting with the tracker ``current`` if it is ready."""
        return Steps(self._run(current))

    def _run(self, current: str | None) -> Generator[Effect, Any, dict[str, str]]:
        """The ``OK`` reply's arguments; the typed error of an ``ERR``."""
        pending = self.roster.order(current)
        sends = timeouts = 0  # requests that went out and lost their reply; by timing out
        errors = 0  # TRANSIENT error replies
        failed: tuple[str, Reply] | None = None  # the last of them, and its tracker
        while pending:
            address = pending.pop(0)
            outcome = yield Exchange(address, self.line)
            if isinstance(outcome, Unsent):
                yield from self._fail(address, outcome.reason)
                continue
            if isinstance(outcome, Lost):
                yield from self._fail(address, outcome.reason)
                sends += 1
                timeouts += outcome.timed_out
                if (yield from self._took_effect()):
                    return {}
                if timeouts >= max(2, len(self.roster.trackers)) or sends >= MAX_LOST_REPLIES:
                    break
                pending.append(address)  # after the others, on a new connection
                continue
            self.roster.recovered(address)
            if self._transient(outcome, errors):
                yield from self._fail(address, f"ERR {outcome.code} {outcome.message}")
                if (yield from self._took_effect()):
                    return {}
                yield Pause(TRANSIENT_PAUSE * 2**errors)
                errors += 1
                failed = (address, outcome)
                pending.append(address)
                continue
            if (
                not outcome.ok
                and (sends or errors)
                and (yield from self._done_before(outcome, waiting=self.patient and sends > 0))
            ):
                return {}
            if (
                failed
                and not sends
                and outcome.code in TAKEN_BY_FAILED_ATTEMPT.get(self.command, ())
            ):
                return self._answer(*failed)
            return self._answer(address, outcome)
        tried = "; ".join(f"{address}: {reason}" for address, reason in self.attempts)
        raise TrackerUnavailableError(
            f"{self.command}{self.describe()}: no tracker answered (tried {tried})",
            self.attempts,
        )

    def _fail(self, address: str, reason: str) -> Generator[Effect, Any, None]:
        """Drop the connection, rest the tracker and remember why."""
        yield Drop()
        self.roster.rest(address)
        self.attempts.append((address, reason))
        logger.warning("MogileFS tracker %s failed: %s", address, reason)

    def _transient(self, reply: Reply, errors: int) -> bool:
        """Whether ``reply`` is a TRANSIENT error to try the request again after."""
        return (
            not reply.ok
            and reply.code in TRANSIENT
            and errors < MAX_TRANSIENT_ERRORS
            and (self.command in RESENDABLE or self.settle is not None)
        )

    def _took_effect(self) -> Generator[Effect, Any, bool]:
        """After a lost reply: whether the request is known to have taken effect.

        False means it may be sent again; an outcome that cannot be found
        out raises TrackerUnavailableError.
        """
        if self.command in RESENDABLE:
            return False
        if self.settle is None:
            raise self._unknown_outcome("it is not idempotent")
        done = yield from self._ask()
        logger.info(
            "%s%s got no answer (%s) and %s",
            self.command,
            self.describe(),
            self.attempts[-1][1],
            "had taken effect" if done else "had not taken effect: sending it again",
        )
        return done

    def _done_before(self, reply: Reply, *, waiting: bool) -> Generator[Effect, Any, bool]:
        """Whether a resent command was refused because an earlier attempt did the work.

        A lost attempt may still be running on its tracker (mogilefsd's
        killed worker finishes the request it has; a stopping tracker too),
        so with ``waiting`` the settle function is asked until it says yes
        or as long as the reply to that attempt would have been waited for;
        an attempt answered with an error has ended, and it is asked once.
        """
        if reply.code in DONE_ON_RESEND.get(self.command, ()):
            logger.info(
                "%s%s sent again answered %s: done already",
                self.command,
                self.describe(),
                reply.code,
            )
            return True
        if self.settle is None:
            return False
        deadline = time.monotonic() + (self.timeout if waiting else 0)
        pause = SETTLE_PAUSE
        while not (yield from self._ask()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            yield Pause(min(pause, remaining))
            pause = min(pause * 2, SETTLE_PAUSE_MAX)
        return True

    def _ask(self) -> Generator[Effect, Any, bool]:
        """The settle function's answer; TrackerUnavailableError saying what is
        known if no tracker answers it."""
        answer = yield Ask(self.settle)
        if isinstance(answer, TrackerUnavailableError):
            raise self._unknown_outcome(
                f"no tracker could be asked whether it did ({answer})"
            ) from answer
        return bool(answer)

    def _answer(self, address: str, reply: Reply) -> dict[str, str]:
        """The arguments of an ``OK`` reply; the typed error for an ``ERR``."""
        if reply.ok:
            return reply.args
        raise tracker_error(
            reply.code,
            reply.message,
            command=self.command,
            tracker=address,
            key=_subject_key(self.args),
            domain=_str_or_none(self.args.get("domain")),
        )

    def _unknown_outcome(self, why: str) -> TrackerUnavailableError:
        address, reason = self.attempts[-1]
        return TrackerUnavailableError(
            f"{self.command}{self.describe()} was sent to tracker {address} but got no answer "
            f"({reason}); it may or may not have taken effect, and it is not sent again "
            f"because {why}",
            self.attempts,
        )

    def describe(self) -> str:
        """`` for key 'k'`` when the request is about a key, else ``""``."""
        key = _subject_key(self.args)
        return f" for key {key!r}" if key is not None else ""


def _str_or_none(value: str | int | None) -> str | None:
    return None if value is None else str(value)


def _subject_key(args: Args) -> str | None:
    return _str_or_none(args.get("key", args.get("from_key")))

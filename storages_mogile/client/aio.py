"""Talking to MogileFS trackers from asyncio, without blocking the event loop.

An :class:`AsyncTrackerPool` drives the same I/O-free rules as the blocking
:class:`~.trackers.TrackerPool` (:mod:`.core`: failover, backoff, resending,
the settling of lost replies), over asyncio connections:

* Each event loop has its own idle connections. A request takes one to the
  tracker it tries (or opens one) and holds it until it ends, then puts it
  back if it can carry another request; two requests never share one.
* A connection that failed, timed out, received anything unasked, or was
  left owing a reply (its task was cancelled mid-exchange) is closed, so a
  late reply can never answer a later request.
* ``await pool.aclose()`` in each event loop before it ends closes that
  loop's connections. A forked child must run an event loop of its own (as
  asyncio requires); there it opens connections of its own.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping

from . import guard
from .core import Lost, ReplyLines, Stage, Unsent, arun_steps, no_reply
from .errors import TrackerUnavailableError
from .protocol import ProtocolError, Reply
from .trackers import BasePool, split_address

#: The async form of :data:`~.trackers.Settle`: whether a request whose reply
#: was lost took effect.
AsyncSettle = Callable[[], Awaitable[bool]]


class _TrackerProtocol(asyncio.Protocol):
    """The bytes of one tracker connection, cut into reply lines as they arrive."""

    def __init__(self) -> None:
        self.lines = ReplyLines()
        self._arrived: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        self.lines.feed(data)
        self._wake()

    def eof_received(self) -> None:
        self.lines.feed(b"")
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lines.feed(b"")
        self._wake()

    def _wake(self) -> None:
        if self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)

    async def reply(self) -> Reply:
        """The next reply line, once it is complete."""
        while (reply := self.lines.reply()) is None:
            self._arrived = asyncio.get_running_loop().create_future()
            await self._arrived
        return reply


class AsyncTrackerConnection:
    """One asyncio connection to one tracker, exchanging one line for one line."""

    def __init__(
        self, address: str, transport: asyncio.Transport, protocol: _TrackerProtocol
    ) -> None:
        self.address = address
        self.pid = os.getpid()
        self._transport = transport
        self._protocol = protocol

    @classmethod
    async def open(cls, address: str, *, connect_timeout: float) -> AsyncTrackerConnection:
        """A new connection to ``address``; TimeoutError after ``connect_timeout`` seconds."""
        guard.check_tracker(address)
        host, port = split_address(address)
        connecting = asyncio.get_running_loop().create_connection(_TrackerProtocol, host, port)
        try:
            transport, protocol = await asyncio.wait_for(connecting, connect_timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no connection within {connect_timeout:g} s") from None
        return cls(address, transport, protocol)

    def usable(self) -> bool:
        """Whether this connection can carry the next request (see the module)."""
        return (
            self.pid == os.getpid()
            and not self._transport.is_closing()
            and self._protocol.lines.idle
        )

    def send(self, line: bytes) -> None:
        """Send one request line."""
        self._protocol.lines.sent()
        self._transport.write(line)

    async def read_reply(self, timeout: float) -> Reply:
        """Read and decode one reply line, waiting at most ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self._protocol.reply(), timeout)
        except asyncio.TimeoutError:
            raise no_reply(timeout) from None

    def close(self) -> None:
        self._transport.close()


class AsyncTrackerPool(BasePool):
    """Sends tracker requests from asyncio, with failover (see the module).

    The settings are :class:`~.trackers.BasePool`'s; at most ``max_idle``
    connections per event loop are kept between requests.
    """

    def __init__(
        self, trackers: str | Iterable[str], *, max_idle: int = 16, **settings: float
    ) -> None:
        super().__init__(trackers, **settings)
        self.max_idle = max_idle
        self._idle: dict[asyncio.AbstractEventLoop, list[AsyncTrackerConnection]] = {}

    async def call(
        self,
        command: str,
        args: Mapping[str, str | int | None],
        *,
        settle: AsyncSettle | None = None,
        patient: bool = True,
    ) -> dict[str, str]:
        """Send ``command`` and return the ``OK`` reply's arguments.

        As :meth:`.TrackerPool.call`, with an async ``settle`` function.
        """
        session = _Session(self, self._idle_here())
        try:
            request = self._request(command, args, settle, patient=patient)
            return await arun_steps(request.steps(session.preferred()), session)
        finally:
            session.release()

    async def aclose(self) -> None:
        """Close the running event loop's idle connections; later calls open new ones."""
        idle = self._idle_here()
        while idle:
            idle.pop().close()
        await asyncio.sleep(0)  # let the transports finish closing their sockets

    def _idle_here(self) -> list[AsyncTrackerConnection]:
        """The running event loop's idle connections (forgetting closed loops')."""
        loop = asyncio.get_running_loop()
        with self._lock:
            for closed in [other for other in self._idle if other.is_closed()]:
                del self._idle[closed]
            return self._idle.setdefault(loop, [])


class _Session:
    """The transport of one request: the connection it holds, in its event loop."""

    def __init__(self, pool: AsyncTrackerPool, idle: list[AsyncTrackerConnection]) -> None:
        self._pool = pool
        self._idle = idle
        self._held: AsyncTrackerConnection | None = None

    def preferred(self) -> str | None:
        """The tracker of the connection used last, to be tried first."""
        return self._idle[-1].address if self._idle else None

    async def exchange(self, address: str, line: bytes) -> Reply | Unsent | Lost:
        """One request line and its reply, on a connection to ``address``."""
        stage = Stage()
        try:
            connection = await self._connection(address)
            stage.sending()
            connection.send(line)
            stage.receiving()
            return await connection.read_reply(self._pool.timeout)
        except (OSError, ProtocolError) as exc:
            return stage.failed(exc)

    async def drop(self) -> None:
        """Close the held connection: it failed."""
        if self._held is not None:
            self._held.close()
            self._held = None

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def ask(self, settle: AsyncSettle) -> bool | TrackerUnavailableError:
        """``await settle()``, or the TrackerUnavailableError it raised."""
        try:
            return await settle()
        except TrackerUnavailableError as exc:
            return exc

    def release(self) -> None:
        """Put the held connection back if it can carry another request, else close it."""
        held, self._held = self._held, None
        if held is None:
            return
        if held.usable() and len(self._idle) < self._pool.max_idle:
            self._idle.append(held)
        else:
            held.close()

    async def _connection(self, address: str) -> AsyncTrackerConnection:
        """A usable connection to ``address``: the held one, an idle one, or a new one."""
        if self._held is not None and self._held.address == address and self._held.usable():
            return self._held
        self.release()
        for index in range(len(self._idle) - 1, -1, -1):
            if self._idle[index].address == address:
                found = self._idle.pop(index)
                if found.usable():
                    self._held = found
                    return found
                found.close()
        self._held = await AsyncTrackerConnection.open(
            address, connect_timeout=self._pool.connect_timeout
        )
        return self._held

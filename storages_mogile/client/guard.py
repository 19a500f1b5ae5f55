"""A guard that keeps every tracker connection on one cluster, for tests.

While :func:`only_trackers` is active, every tracker connection of the
process (of every thread, and of any Client or Admin, whenever it was made)
may reach only the trackers it names; any other address raises
:class:`ForeignTrackerError` before a byte is sent: a connection checks its
address before it connects, a tracker pool all of its addresses before each
request (so also a connection opened before the guard). The pytest plugin's
``mogilefs`` fixture activates it, so a project's test suite cannot write
to the clusters its settings name. Storage-node URLs are not checked: the
client has them from the trackers (or from a caller that passes paths).

The state is one module global, not a context variable, so threads the test
starts are guarded too, and so are processes it forks; a new interpreter it
starts (``subprocess``, multiprocessing's spawn) is not. Inactive, the guard
costs a function call and a global lookup per connection and per request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from . import trackers as _trackers  # a module: trackers.py imports this one

_allowed: frozenset[tuple[str, int]] | None = None


class ForeignTrackerError(RuntimeError):
    """A tracker connection was refused: the address is not the guarded cluster's.

    Not a MogileFSError (nor an OSError): nothing may catch it as a cluster
    failure and carry on, or try the next tracker. ``address`` is the
    refused ``host:port``, ``allowed`` the addresses that may be reached.
    """

    def __init__(self, address: str, allowed: Iterable[str]) -> None:
        self.address = address
        self.allowed = sorted(allowed)
        super().__init__(
            f"Connection to MogileFS tracker {address} blocked: while the pytest fixture "
            f"'mogilefs' is active, only the test's dev MogileFS ({', '.join(self.allowed)}) "
            "may be reached, so that no test writes to a real cluster. MogileFSStorage "
            "instances are pointed at it by themselves; this connection came from a Client "
            "or Admin made with trackers of its own, or from a storage that does not resolve "
            "its options through MogileFSStorage (a subclass that builds its own client). "
            "Use storage.client, or the fixture's trackers (mogilefs.trackers) in the test."
        )


@contextlib.contextmanager
def only_trackers(trackers: Iterable[str]) -> Iterator[None]:
    """Refuse, while active, every tracker address but ``trackers`` (``host:port``)."""
    global _allowed
    if _allowed is not None:
        raise RuntimeError("only_trackers() is already active; it does not nest.")
    _allowed = frozenset(_endpoint(address) for address in _trackers.parse_trackers(list(trackers)))
    try:
        yield
    finally:
        _allowed = None


def check_tracker(address: str) -> None:
    """Raise ForeignTrackerError if a guard is active and ``address`` is not allowed.

    Addresses compare as ``(host, port)``, the host case-insensitively, so
    ``localhost:7001`` and ``127.0.0.1:7001`` are different trackers here.
    """
    check_trackers((address,))


def check_trackers(addresses: Iterable[str]) -> None:
    """Raise ForeignTrackerError for the first address not allowed, if a guard is active.

    A pool checks all of its trackers before each request: with one
    foreign tracker among allowed ones it fails every time, not only when
    its turn comes.
    """
    allowed = _allowed
    if allowed is None:
        return
    for address in addresses:
        if _endpoint(address) not in allowed:
            raise ForeignTrackerError(address, (f"{host}:{port}" for host, port in allowed))


def _endpoint(address: str) -> tuple[str, int]:
    host, port = _trackers.split_address(address)
    return host.lower(), port

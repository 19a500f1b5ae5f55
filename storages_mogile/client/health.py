"""Which storage nodes failed a moment ago, and how a process treats them.

A node that fails without an answer (refused, reset, silent) becomes
*wary* until it answers again. While wary:

* it *rests*: reads and uploads try it after every other node. The first
  rest lasts ``backoff`` seconds; each failed probe doubles it, up to
  :data:`MAX_REST`.
* it is *probed*: one request at a time goes to it (with the usual
  timeouts). A request that reaches the node while the probe is under way
  moves on at once when it has another copy or destination; when the node
  is its last one it waits up to :data:`PROBE_WAIT` for the probe's outcome,
  goes ahead if the node answered, and gives up otherwise. So a hung node
  holds one request per process for the progress timeout and the others
  that have nowhere else to go about a second, not every thread whose file
  has a copy on it; and a node that comes back serves the requests waiting
  for it.

Any answer from the node ends all of that. Only a failure of the probe
itself doubles the rest: requests sent before the node became wary fail
one by one without counting. State is per process; a forked child keeps
the parent's view with a lock of its own. ``backoff=0`` turns all of it
off: every request then meets a hung node for the progress timeout.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

#: The longest a node rests, in seconds.
MAX_REST = 60.0
#: Seconds a request whose last copy or destination is on a wary node waits
#: for the probe under way to end.
PROBE_WAIT = 1.0


class Admission(Enum):
    """What a request to a node may do (:meth:`NodeHealth.admit`)."""

    GO = "go"  # send it
    SKIP = "skip"  # a wary node that did not answer the probe: do not send


@dataclass
class _Probe:
    thread: int  # threading.get_ident() of the request probing
    ends: float  # when it has had its time
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Wary:
    until: float  # the end of the rest
    length: float  # of the rest
    probe: _Probe | None = None


class NodeHealth:
    """The wary nodes of one :class:`~.nodes.StorageNodes`.

    ``backoff`` is the first rest (``0``: nodes never become wary);
    ``probe_time`` the longest a probe is waited for before another may go.
    """

    def __init__(self, *, backoff: float, probe_time: float) -> None:
        self.backoff = backoff
        self.probe_time = probe_time
        self._wary: dict[str, _Wary] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def order(self, urls: Iterable[str], node: Callable[[str], str]) -> list[str]:
        """``urls`` with those on nodes (``node(url)``) resting or being probed moved last.

        The order among the others is kept.
        """
        urls = list(urls)
        if not self._wary:
            return urls
        now = time.monotonic()
        with self._locked():
            resting = {
                name
                for name, wary in self._wary.items()
                if wary.until > now or (wary.probe is not None and wary.probe.ends > now)
            }
        return sorted(urls, key=lambda url: node(url) in resting)

    def admit(self, node: str, *, last: bool) -> Admission:
        """Whether a request goes to ``node``; ``last``: it has nowhere else to go."""
        if node not in self._wary:
            return Admission.GO
        with self._locked():
            wary = self._wary.get(node)
            if wary is None:
                return Admission.GO
            now = time.monotonic()
            probe = wary.probe
            if probe is None or probe.ends <= now:
                wary.probe = _Probe(threading.get_ident(), now + self.probe_time)
                return Admission.GO
            if not last:
                return Admission.SKIP
        probe.done.wait(PROBE_WAIT)
        return Admission.SKIP if node in self._wary else Admission.GO

    def failed(self, node: str) -> None:
        """``node`` failed without an answer: it becomes wary, or rests longer."""
        if not self.backoff:
            return
        now = time.monotonic()
        with self._locked():
            wary = self._wary.get(node)
            if wary is None:
                self._wary[node] = _Wary(now + self.backoff, self.backoff)
                return
            probe = wary.probe
            if probe is not None and probe.thread == threading.get_ident():
                wary.probe = None
                wary.length = min(wary.length * 2, max(MAX_REST, self.backoff))
                probe.done.set()
            wary.until = max(wary.until, now + wary.length)

    def answered(self, node: str) -> None:
        """``node`` answered: it is no longer wary."""
        if node in self._wary:
            with self._locked():
                wary = self._wary.pop(node, None)
            if wary is not None and wary.probe is not None:
                wary.probe.done.set()

    def _locked(self) -> threading.Lock:
        if self._pid != os.getpid():
            # A forked child: the parent's lock may have been held by a
            # thread that does not exist here.
            self._lock = threading.Lock()
            self._pid = os.getpid()
        return self._lock

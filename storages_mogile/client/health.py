"""Which storage nodes failed a moment ago, and how a process treats them.

A node that fails without an answer (refused, reset, silent) becomes
*wary* until it answers again. While wary:

* it *rests*: reads and uploads try it after every other node. The first
  rest lasts ``backoff`` seconds; each failed probe doubles it, up to
  :data:`MAX_REST`.
* it is *probed*: one request at a time goes to it, and that one waits at
  most :data:`PROBE_TIMEOUT` for the node's first byte. A request that
  reaches the node while a probe is under way moves on at once when it has
  another copy or destination; when the node is its last one it waits for
  the probe's outcome (at most as long as the probe) and goes ahead if the
  node answered. So a hung node holds each request that has nowhere else
  to go about a second, not the progress timeout or longer; and a node that
  comes back serves the very requests that were waiting for it.

Any answer from the node ends all of that. State is per process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

#: The longest a node rests, in seconds.
MAX_REST = 60.0
#: Seconds a wary node has to send its first byte to a probe.
PROBE_TIMEOUT = 1.0


class Admission(Enum):
    """What a request to a node may do (:meth:`NodeHealth.admit`)."""

    GO = "go"  # the node is not wary: the usual timeouts
    PROBE = "probe"  # the request probes a wary node: PROBE_TIMEOUT
    SKIP = "skip"  # a wary node that did not answer its probe: do not send


@dataclass
class _Wary:
    until: float  # the end of the rest
    length: float  # of the rest
    probe: threading.Event | None = None  # set when the probe under way ends
    probe_ends: float = 0.0


class NodeHealth:
    """The wary nodes of one :class:`~.nodes.StorageNodes`.

    ``backoff`` is the first rest (``0``: nodes never become wary).
    """

    def __init__(self, *, backoff: float) -> None:
        self.backoff = backoff
        self._wary: dict[str, _Wary] = {}
        self._lock = threading.Lock()

    def order(self, urls: Iterable[str], node: Callable[[str], str]) -> list[str]:
        """``urls`` with those on nodes (``node(url)``) resting or being probed moved last.

        The order among the others is kept.
        """
        urls = list(urls)
        if not self._wary:
            return urls
        now = time.monotonic()
        with self._lock:
            resting = {
                name
                for name, wary in self._wary.items()
                if wary.until > now or wary.probe_ends > now
            }
        return sorted(urls, key=lambda url: node(url) in resting)

    def admit(self, node: str, *, last: bool) -> Admission:
        """Whether and how a request goes to ``node``; ``last``: it has nowhere else to go."""
        if node not in self._wary:
            return Admission.GO
        with self._lock:
            wary = self._wary.get(node)
            if wary is None:
                return Admission.GO
            now = time.monotonic()
            if wary.probe is None or wary.probe_ends <= now:
                wary.probe, wary.probe_ends = threading.Event(), now + PROBE_TIMEOUT
                return Admission.PROBE
            if not last:
                return Admission.SKIP
            probe, remaining = wary.probe, wary.probe_ends - now
        probe.wait(remaining)
        return Admission.SKIP if node in self._wary else Admission.GO

    def failed(self, node: str) -> None:
        """``node`` failed without an answer: it becomes wary, or rests longer."""
        if not self.backoff:
            return
        now = time.monotonic()
        with self._lock:
            wary = self._wary.get(node)
            if wary is None:
                self._wary[node] = _Wary(now + self.backoff, self.backoff)
                return
            if wary.probe is not None:  # the probe failed
                wary.probe.set()
                wary.probe, wary.probe_ends = None, 0.0
                wary.length = min(wary.length * 2, max(MAX_REST, self.backoff))
            wary.until = max(wary.until, now + wary.length)

    def answered(self, node: str) -> None:
        """``node`` answered: it is no longer wary."""
        if node in self._wary:
            with self._lock:
                wary = self._wary.pop(node, None)
            if wary is not None and wary.probe is not None:
                wary.probe.set()

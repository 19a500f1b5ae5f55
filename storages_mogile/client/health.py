"""Which storage nodes failed a moment ago, and how a process treats them.

A node that fails without an answer (refused, reset, silent) becomes
*wary* until it answers again. While wary:

* it *rests*: reads and uploads try it after every other node. The first
  rest lasts ``backoff`` seconds; each failure of the node after that doubles
  it, up to :data:`MAX_REST`.
* it gets one request at a time, the *probe*, which waits only the progress
  timeout. A request that reaches the node while another one is trying it
  skips it at once (for the next copy or destination, or an error when none
  is left). So a hung node holds one thread per process, not every thread
  whose file has a copy on it.

Any answer from the node ends all of that, so a node that comes back is
used again by the next request that reaches it. State is per process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: The longest a node rests, in seconds.
MAX_REST = 60.0


@dataclass
class _Wary:
    until: float  # the end of the rest
    length: float  # of the rest
    probing_until: float = 0.0  # a request is trying the node until then


class NodeHealth:
    """The wary nodes of one :class:`~.nodes.StorageNodes`.

    ``backoff`` is the first rest (``0``: nodes never become wary);
    ``probe_time`` the longest a probe can take (then another may start).
    """

    def __init__(self, *, backoff: float, probe_time: float) -> None:
        self.backoff = backoff
        self.probe_time = probe_time
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
                if wary.until > now or wary.probing_until > now
            }
        return sorted(urls, key=lambda url: node(url) in resting)

    def begin(self, node: str) -> bool:
        """Whether a request may go to ``node`` now: not while another one probes it."""
        if node not in self._wary:
            return True
        now = time.monotonic()
        with self._lock:
            wary = self._wary.get(node)
            if wary is None:
                return True
            if wary.probing_until > now:
                return False
            wary.probing_until = now + self.probe_time
            return True

    def failed(self, node: str) -> None:
        """``node`` failed without an answer: it becomes wary, or rests longer."""
        if not self.backoff:
            return
        now = time.monotonic()
        with self._lock:
            wary = self._wary.get(node)
            if wary is None:
                self._wary[node] = _Wary(now + self.backoff, self.backoff)
            elif wary.probing_until:
                length = min(wary.length * 2, max(MAX_REST, self.backoff))
                self._wary[node] = _Wary(now + length, length)
            else:  # a request sent before the node became wary
                wary.until = max(wary.until, now + wary.length)

    def answered(self, node: str) -> None:
        """``node`` answered: it is no longer wary."""
        if node in self._wary:
            with self._lock:
                self._wary.pop(node, None)

    def wary(self, node: str) -> bool:
        """Whether ``node`` failed and has not answered since: worth only a short wait."""
        return node in self._wary

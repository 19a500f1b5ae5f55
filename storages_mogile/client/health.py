"""Which storage nodes failed a moment ago, and how a process treats them.

A node that fails without an answer (refused, reset, silent) becomes
*wary*: reads and uploads try it after the other copies and destinations.
Meanwhile a background thread of the process *probes* the node: it asks it
for the file that failed (a HEAD, with the usual timeouts) again and again,
pausing :data:`PROBE_PAUSE` after a failure that came at once (refused),
until the node answers. While a probe has been waiting longer than that
pause, the node is *hanging*: no request is sent to it, and one whose only
copy or destination is there waits at most :data:`ANSWER_WAIT` for the
probe to be answered, then fails (a read: 503) instead of holding its
thread for the progress timeout. (A node that refuses costs a
request nothing, so one whose last copy is there still tries it: the node
may be back before the probe sees it.) Any answer, any HTTP status, ends
the node's wariness. So a hung node costs only the requests under way when
it stopped, and one that comes back is used again within moments.

State is per process: a forked child starts with no wary node (it has no
probe threads). ``backoff=0`` turns all of it off; every request then meets
a hung node for the progress timeout.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

logger = logging.getLogger(__name__)

#: Seconds a probe thread pauses after a probe that failed at once.
PROBE_PAUSE = 0.2

#: Seconds a request whose last copy or destination is on a hanging node
#: waits for the node to answer its probe (a node resumed a moment ago).
ANSWER_WAIT = 0.25

#: Asks the node of a URL about that URL: whether it answered at all.
Probe = Callable[[str], bool]


class NodeHealth:
    """The wary nodes of one :class:`~.nodes.StorageNodes`.

    ``probe`` asks a URL's node (blocking, with a timeout); ``backoff`` 0
    turns wariness off.
    """

    def __init__(self, *, probe: Probe, backoff: float) -> None:
        self.probe = probe
        self.backoff = backoff
        self._wary: dict[str, threading.Event] = {}  # node: set when it answers
        self._probing: dict[str, float] = {}  # node: since when its probe waits
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def wary(self, node: str) -> bool:
        """Whether ``node`` failed without an answer and has not answered a probe since."""
        self._forget_the_parents()
        return node in self._wary

    def await_answer(self, node: str) -> bool:
        """Wait up to :data:`ANSWER_WAIT` for ``node`` to answer; whether it did."""
        answered = self._wary.get(node)
        return answered is None or answered.wait(ANSWER_WAIT)

    def hanging(self, node: str) -> bool:
        """Whether ``node`` is wary and its probe has been waiting for an answer a while."""
        since = self._probing.get(node) if self.wary(node) else None
        return since is not None and time.monotonic() - since > PROBE_PAUSE

    def order(self, urls: Iterable[str], node: Callable[[str], str]) -> list[str]:
        """``urls`` with those on wary nodes (``node(url)``) moved last; the order
        among the others is kept."""
        urls = list(urls)
        if not self._wary:
            return urls
        return sorted(urls, key=lambda url: self.wary(node(url)))

    def failed(self, node: str, url: str) -> None:
        """``node`` failed without an answer to a request for ``url``: it becomes
        wary, and a thread probes it with ``url`` until it answers."""
        if not self.backoff:
            return
        self._forget_the_parents()
        with self._lock:
            if node in self._wary:
                return
            self._wary[node] = threading.Event()
        logger.warning("storage node %s is not used until it answers a probe", node)
        threading.Thread(
            target=self._probe_until_answered,
            args=(node, url),
            name=f"storages-mogile probe {node}",
            daemon=True,
        ).start()

    def answered(self, node: str) -> None:
        """``node`` answered: it is no longer wary."""
        if node in self._wary:
            with self._lock:
                answered = self._wary.pop(node, None)
            if answered is not None:
                answered.set()

    def _probe_until_answered(self, node: str, url: str) -> None:
        pid = os.getpid()
        while node in self._wary and os.getpid() == pid:
            began = self._probing[node] = time.monotonic()
            answered = self.probe(url)
            self._probing.pop(node, None)
            if answered:
                logger.warning("storage node %s answered a probe: used again", node)
                self.answered(node)
                return
            time.sleep(max(0.0, PROBE_PAUSE - (time.monotonic() - began)))

    def _forget_the_parents(self) -> None:
        if self._pid != os.getpid():
            # A forked child: the parent's probe threads do not run here, and
            # its lock may have been held by a thread that does not exist.
            self._lock = threading.Lock()
            self._wary = {}
            self._probing = {}
            self._pid = os.getpid()

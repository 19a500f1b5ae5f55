"""Which storage nodes failed a moment ago, and how a process treats them.

A node that fails without an answer (refused, reset, silent) becomes
*wary*: reads and uploads try it after the other copies and destinations.
Meanwhile a background thread of the process *probes* the node: it asks it
for the file that failed (a HEAD, with the usual timeouts) again and again,
pausing after a failure that came at once (refused) from
:data:`PROBE_PAUSE` doubling up to ``backoff``, until the node answers (or
the client is closed or collected). While a probe has been waiting longer than that
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

import inspect
import logging
import os
import threading
import time
import weakref
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
        # Weakly held when a method (of the StorageNodes owning this): a
        # client dropped without close() is freed, and its probes end.
        self._probe: Callable[[], Probe | None] = (
            weakref.WeakMethod(probe) if inspect.ismethod(probe) else lambda: probe
        )
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
        with self._locked():
            if node in self._wary:
                return
            self._wary[node] = threading.Event()
        logger.warning("storage node %s is not used until it answers a probe", node)
        threading.Thread(
            target=_probe_until_answered,
            args=(weakref.ref(self), node, url, os.getpid()),
            name=f"storages-mogile probe {node}",
            daemon=True,
        ).start()

    def answered(self, node: str) -> None:
        """``node`` answered: it is no longer wary."""
        if node in self._wary:
            with self._locked():
                answered = self._wary.pop(node, None)
            if answered is not None:
                answered.set()

    def close(self) -> None:
        """Forget every wary node; their probe threads end."""
        with self._locked():
            answered, self._wary = list(self._wary.values()), {}
        for event in answered:
            event.set()

    def _locked(self) -> threading.Lock:
        self._forget_the_parents()
        return self._lock

    def _forget_the_parents(self) -> None:
        if self._pid != os.getpid():
            # A forked child: the parent's probe threads do not run here, and
            # its lock may have been held by a thread that does not exist.
            self._lock = threading.Lock()
            self._wary = {}
            self._probing = {}
            self._pid = os.getpid()


def _probe_until_answered(health: weakref.ref[NodeHealth], node: str, url: str, pid: int) -> None:
    """Probe ``node`` until it answers, it is no longer wary, or its NodeHealth
    is closed or gone. Pauses after probes that failed at once double from
    :data:`PROBE_PAUSE` up to ``backoff``: a node that stays down is asked
    seldom (requests still try it while it refuses)."""
    pause = PROBE_PAUSE
    while (current := health()) is not None and current.wary(node) and os.getpid() == pid:
        probe = current._probe()
        if probe is None:
            return
        began = current._probing[node] = time.monotonic()
        answered = probe(url)
        current._probing.pop(node, None)
        if answered:
            logger.warning("storage node %s answered a probe: used again", node)
            current.answered(node)
            return
        waited = time.monotonic() - began
        pause = (
            PROBE_PAUSE
            if waited > PROBE_PAUSE
            else min(pause * 2, max(current.backoff, PROBE_PAUSE))
        )
        del current, probe  # between probes, only weak references are held
        time.sleep(max(0.0, pause - waited))

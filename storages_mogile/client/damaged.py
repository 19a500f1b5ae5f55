"""Copies found damaged: remembered so that reads try them last.

A copy whose bytes do not match the MD5 the tracker recorded stays damaged
until MogileFS replaces it (``mogilefsd`` fsck, or the file saved again,
which gives it a new fid and so new paths). Reading it first again would
cost a failed response each time, so a process remembers the URLs it found
damaged and puts them after the intact copies.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Container, Iterable


def damaged_last(paths: Iterable[str], damaged: Container[str]) -> list[str]:
    """``paths`` with those in ``damaged`` moved to the end, the order otherwise kept."""
    paths = list(paths)
    return [url for url in paths if url not in damaged] + [url for url in paths if url in damaged]


class DamagedCopies:
    """The storage-node URLs this process found damaged, the newest ``limit`` of them.

    Safe to share between threads and across ``fork()`` (a child starts
    with the parent's URLs and a lock of its own).
    """

    limit = 10_000

    def __init__(self) -> None:
        self._urls: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def add(self, url: str) -> bool:
        """Remember ``url`` as damaged; whether it was new (worth reporting)."""
        with self._locked():
            if url in self._urls:
                self._urls.move_to_end(url)
                return False
            self._urls[url] = None
            while len(self._urls) > self.limit:
                self._urls.popitem(last=False)
            return True

    def __contains__(self, url: object) -> bool:
        return url in self._urls

    def last(self, paths: Iterable[str]) -> list[str]:
        """``paths`` with the copies known damaged moved to the end."""
        return damaged_last(paths, self)

    def _locked(self) -> threading.Lock:
        if self._pid != os.getpid():
            # A forked child: the parent's lock may have been held by a
            # thread that does not exist here.
            self._lock = threading.Lock()
            self._pid = os.getpid()
        return self._lock

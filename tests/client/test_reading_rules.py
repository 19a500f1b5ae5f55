"""The reading rules (:class:`~storages_mogile.client.reading.CopyReading`)
stepped over a copy held in memory: the byte positions a real node's timing
decides, chosen here.

A transport that goes back over bytes it received (an asyncio read
cancelled after bytes arrived) must keep the MD5 check of a whole read,
wherever the positions fall.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Generator
from typing import Any

import pytest

from storages_mogile.client import ChecksumMismatchError
from storages_mogile.client.core import Steps, run_steps
from storages_mogile.client.reading import BodyStart, Broken, CopyReading, NodeRules

URL = "http://node.invalid/dev1/0/000/000/0000000001.fid"


class MemoryCopy:
    """A transport whose one copy is ``data``, given ``piece`` bytes at a
    time at most (a socket's reads are as short)."""

    def __init__(self, data: bytes, piece: int) -> None:
        self.data = data
        self.piece = piece
        self.at = 0

    def open(self, url: str, start: int, end: int | None, *, last: bool) -> BodyStart:
        self.at = start
        return BodyStart(size=len(self.data), last_modified=None)

    def receive(self, amount: int) -> bytes:
        data = self.data[self.at : self.at + min(amount, self.piece)]
        self.at += len(data)
        return data

    def release(self) -> None:
        self.at = len(self.data)


def reading_of(data: bytes, md5: str) -> CopyReading:
    nodes = NodeRules(connect_timeout=1, http_timeout=1, progress_timeout=1, backoff=0)
    return CopyReading([URL], nodes=nodes, key="k", size=len(data), md5=md5)


def read_back_and_on(data: bytes, md5: str) -> bytes:
    """10 bytes read; 33 more received, then gone back over (handed to no
    one); the rest read in 64-byte pieces, whose positions never meet 43."""
    copy = MemoryCopy(data, piece=7)
    reading = reading_of(data, md5)
    first = run_steps(Steps(reading.fill(10)), copy)
    mark = reading.mark()
    run_steps(Steps(reading.fill(33)), copy)
    run_steps(Steps(reading.back_to(mark)), copy)
    return first + run_steps(Steps(reading.read_all(64)), copy)


def test_going_back_keeps_the_md5_check() -> None:
    data = os.urandom(1000)
    with pytest.raises(ChecksumMismatchError):
        read_back_and_on(data, hashlib.md5(b"other bytes").hexdigest())


def test_going_back_reads_the_file_whole() -> None:
    data = os.urandom(1000)
    assert read_back_and_on(data, hashlib.md5(data).hexdigest()) == data


class Copies:
    """A transport over copies in memory, by URL, ``piece`` bytes a read at
    most; a copy given as ``(data, breaks_at)`` breaks when a read reaches
    that byte (a reset mid-stream)."""

    def __init__(self, copies: dict[str, bytes | tuple[bytes, int]], piece: int) -> None:
        self.copies = copies
        self.piece = piece
        self.url: str | None = None
        self.at = 0
        self.end = 0

    def open(self, url: str, start: int, end: int | None, *, last: bool) -> BodyStart:
        data = self._data(url)
        self.url, self.at = url, start
        self.end = len(data) if end is None else end + 1
        return BodyStart(size=len(data), last_modified=None)

    def receive(self, amount: int) -> bytes | Broken:
        assert self.url is not None
        copy = self.copies[self.url]
        if isinstance(copy, tuple) and self.at >= copy[1]:
            return Broken("reset")
        stop = min(self.at + amount, self.at + self.piece, self.end)
        if isinstance(copy, tuple):
            stop = min(stop, copy[1])
        data = self._data(self.url)[self.at : stop]
        self.at += len(data)
        return data

    def release(self) -> None:
        self.url = None

    def _data(self, url: str) -> bytes:
        copy = self.copies[url]
        return copy[0] if isinstance(copy, tuple) else copy


def cancelled_at(steps: Generator[Any, Any, Any], transport: Copies, effect: int) -> bool:
    """Drive ``steps`` until their ``effect``-th effect, which is not carried
    out (the task was cancelled awaiting it): whether it was reached."""
    driven = Steps(steps)
    step = driven.send(None)
    for _ in range(effect):
        if step is None:
            return False
        step = driven.send(step.via(transport))
    return step is not None


URLS = [f"http://node{index}.invalid/dev{index}/0/000/000/0000000001.fid" for index in (1, 2, 3)]
DATA = os.urandom(300)
DAMAGED = DATA[:150] + bytes([DATA[150] ^ 1]) + DATA[151:]


def steps_of(reading: CopyReading, read: str) -> Generator[Any, Any, bytes]:
    """The steps of a read named ``read``."""
    if read == "read-all":
        return reading.read_all(64)
    if read == "read-piece":
        return reading.read(64)
    return reading.fill(50 if read == "fill-50" else len(DATA))


@pytest.mark.parametrize(
    "copies",
    [
        {URLS[0]: DATA},
        {URLS[0]: DAMAGED, URLS[1]: DATA},
        {URLS[0]: (DATA, 100), URLS[1]: DAMAGED, URLS[2]: DATA},
    ],
    ids=["one-copy", "damaged-then-good", "breaking-damaged-good"],
)
@pytest.mark.parametrize("first", [0, 10], ids=["from-start", "after-read-10"])
@pytest.mark.parametrize("read", ["fill-50", "fill-all", "read-all", "read-piece"])
def test_a_read_cancelled_at_any_effect_is_read_again_whole(
    copies: dict[str, bytes | tuple[bytes, int]], first: int, read: str
) -> None:
    """Whatever effect a read is cancelled at (an open, a receive, the reopen
    at the next copy, the read again after a damaged copy), going back to
    its mark and reading on gives the file's bytes, checked: never a
    damaged copy's, never a byte skipped or twice. With bytes handed out
    before (``after-read-10``), a damaged copy can only end the read."""
    md5 = hashlib.md5(DATA).hexdigest()
    for effect in range(1, 200):
        transport = Copies(copies, piece=32)
        nodes = NodeRules(connect_timeout=1, http_timeout=1, progress_timeout=1, backoff=0)
        reading = CopyReading(list(copies), nodes=nodes, key="k", size=len(DATA), md5=md5)
        head = run_steps(Steps(reading.fill(first)), transport) if first else b""
        mark = reading.mark()
        try:
            if not cancelled_at(steps_of(reading, read), transport, effect):
                return  # the read ended before that effect: every one was tried
        except ChecksumMismatchError:
            assert first, effect
            return
        run_steps(Steps(reading.back_to(mark)), transport)
        try:
            rest = run_steps(Steps(reading.read_all(64)), transport)
        except ChecksumMismatchError:
            assert first, effect
            continue
        assert head + rest == DATA, effect
    pytest.fail("the read never ended")


@pytest.mark.parametrize("read", ["fill-50", "read-all", "read-piece"])
def test_a_ranged_read_cancelled_at_any_effect_goes_on_from_its_mark(read: str) -> None:
    """A read of bytes 20..219, the first copy breaking at byte 100, cancelled
    at any effect and read on: those bytes, each once."""
    copies: dict[str, bytes | tuple[bytes, int]] = {URLS[0]: (DATA, 100), URLS[1]: DATA}
    for effect in range(1, 200):
        transport = Copies(copies, piece=32)
        nodes = NodeRules(connect_timeout=1, http_timeout=1, progress_timeout=1, backoff=0)
        reading = CopyReading(
            list(copies), nodes=nodes, key="k", offset=20, length=200, size=len(DATA)
        )
        head = run_steps(Steps(reading.fill(10)), transport)
        mark = reading.mark()
        if not cancelled_at(steps_of(reading, read), transport, effect):
            return
        run_steps(Steps(reading.back_to(mark)), transport)
        assert head + run_steps(Steps(reading.read_all(64)), transport) == DATA[20:220], effect
    pytest.fail("the read never ended")

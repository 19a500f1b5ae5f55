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

import pytest

from storages_mogile.client import ChecksumMismatchError
from storages_mogile.client.core import Steps, run_steps
from storages_mogile.client.reading import BodyStart, CopyReading, NodeRules

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

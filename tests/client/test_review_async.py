"""The asyncio client under an adversary's use: cancelled tasks, readers used
after a cancelled read, concurrent tasks and event loops.

They run on the dev MogileFS and the real one (hung nodes: the dev node's
``hang()``, a stopped mogstored on the real one).
"""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from storages_mogile.client.aioclient import AsyncClient

from .test_hung_nodes import PATIENCE, Hangable, hangable

__all__ = ["hangable"]  # the fixture, shared with the blocking tests

CHUNK = 64 << 10


@pytest.mark.parametrize("amount", [-1, 8 << 20], ids=["read-all", "read-n"])
def test_a_read_cancelled_mid_body_loses_no_byte_for_the_next_read(
    hangable: Hangable, amount: int
) -> None:
    """A read cancelled after bytes arrived (``asyncio.wait_for`` timing out
    on a stalled node) hands none of them out: the next read must go on from
    where the cancelled one started, not from where it had got to."""
    client = hangable.client()
    data = os.urandom(16 << 20)
    key = f"review-async/{os.urandom(8).hex()}"
    client.store_content(key, data, "thumb")
    (url,) = client.get_paths(key)
    aclient = AsyncClient(
        hangable.target.domain,
        hangable.target.trackers,
        chunk_size=CHUNK,
        http_timeout=PATIENCE,
    )

    async def work() -> bytes:
        async with aclient:
            reader = await aclient.read_file(key)
            async with reader:
                first = await reader.read(CHUNK)
                with hangable.hang(url), pytest.raises(TimeoutError):
                    await asyncio.wait_for(reader.read(amount), 1.0)
                return first + await reader.read()

    read = asyncio.run(work())
    client.delete(key)
    client.close()
    assert (len(read), hashlib.md5(read).hexdigest()) == (
        len(data),
        hashlib.md5(data).hexdigest(),
    )

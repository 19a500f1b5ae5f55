"""The asyncio client under an adversary's use: cancelled tasks, readers used
after a cancelled read, concurrent tasks and event loops.

They run on the dev MogileFS and the real one (hung nodes: the dev node's
``hang()``, a stopped mogstored on the real one).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import io
import os
import random
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from storages_mogile.client import (
    ChecksumMismatchError,
    Client,
    StorageNodeError,
    UnknownKeyError,
)
from storages_mogile.client.aio import AsyncTrackerPool
from storages_mogile.client.aioclient import AsyncClient
from storages_mogile.client.aionodes import AsyncStorageNodes
from tests.conftest import Target

from .conftest import Keys
from .test_hung_nodes import PATIENCE, Hangable, hangable

__all__ = ["hangable"]  # the fixture, shared with the blocking tests

CHUNK = 64 << 10


def read_on_after_a_cancelled_read(
    hangable: Hangable, data: bytes, amount: int = -1, **options: Any
) -> bytes:
    """``data`` stored and read by an AsyncClient (with ``options``) whose
    ``read(amount)`` is cancelled by ``asyncio.wait_for`` after bytes arrived
    (the node stalls), then read on to the end: all it gave."""
    client = hangable.client()
    key = f"review-async/{os.urandom(8).hex()}"
    client.store_content(key, data, "thumb")
    (url,) = client.get_paths(key)
    aclient = AsyncClient(
        hangable.target.domain, hangable.target.trackers, chunk_size=CHUNK, http_timeout=PATIENCE
    )

    async def work() -> bytes:
        async with aclient:
            reader = await aclient.read_file(key, **options)
            async with reader:
                first = await reader.read(CHUNK)
                with hangable.hang(url), pytest.raises(TimeoutError):
                    await asyncio.wait_for(reader.read(amount), 1.0)
                return first + await reader.read()

    try:
        return asyncio.run(work())
    finally:
        client.delete(key)
        client.close()


@pytest.mark.parametrize("amount", [-1, 8 << 20], ids=["read-all", "read-n"])
def test_a_read_cancelled_mid_body_loses_no_byte_for_the_next_read(
    hangable: Hangable, amount: int
) -> None:
    """A read cancelled after bytes arrived (``asyncio.wait_for`` timing out
    on a stalled node) hands none of them out: the next read must go on from
    where the cancelled one started, not from where it had got to."""
    data = os.urandom(16 << 20)
    read = read_on_after_a_cancelled_read(hangable, data, amount)
    assert (len(read), hashlib.md5(read).hexdigest()) == (
        len(data),
        hashlib.md5(data).hexdigest(),
    )


def test_cancelled_requests_never_hand_their_replies_to_later_ones(
    mogile_target: Target, client: Client, keys: Keys
) -> None:
    """Tasks sharing one client's connections, cancelled at every point of
    their requests: each request that completes gets its own key's answer."""
    lengths = {keys(f"{index:02d}"): index + 1 for index in range(12)}
    for key, length in lengths.items():
        client.store_content(key, b"x" * length, "thumb")
    aclient = AsyncClient(mogile_target.domain, mogile_target.trackers)
    rng = random.Random(7)

    async def one(key: str) -> tuple[str, int, str]:
        info = await aclient.file_info(key)
        return key, info.length, info.key

    async def work() -> list[tuple[str, int, str]]:
        answers = []
        async with aclient:
            for _ in range(15):
                tasks = [asyncio.create_task(one(key)) for key in lengths]
                for _ in range(rng.randrange(6)):
                    await asyncio.sleep(0)
                for task in rng.sample(tasks, 6):
                    task.cancel()
                done = await asyncio.gather(*tasks, return_exceptions=True)
                answers += [answer for answer in done if isinstance(answer, tuple)]
        return answers

    answers = asyncio.run(work())
    assert len(answers) >= 15 * 6
    assert [(key, length, key) for key, length, _ in answers] == answers
    assert all(lengths[key] == length for key, length, _ in answers)


def test_concurrent_new_files_each_get_a_key_of_their_own(
    mogile_target: Target, client: Client, keys: Keys
) -> None:
    """store_new_file by tasks of one event loop and of loops in two threads,
    all on the same keys: every file lands under a key of its own, with its
    own bytes, and no staging key is left."""
    aclient = AsyncClient(mogile_target.domain, mogile_target.trackers)
    names = [keys(f"file{index}") for index in range(12)]
    stored: dict[str, bytes] = {}

    async def save(tag: str) -> None:
        data = f"content of {tag}".encode()
        key = await aclient.store_new_file(
            names, io.BytesIO(data), "thumb", staging_key=keys(f"staging/{tag}")
        )
        assert key not in stored
        stored[key] = data

    async def loop(prefix: str) -> None:
        async with aclient:
            await asyncio.gather(*(save(f"{prefix}{index}") for index in range(4)))

    threads = [threading.Thread(target=asyncio.run, args=(loop(f"t{n}-"),)) for n in range(2)]
    for thread in threads:
        thread.start()
    asyncio.run(loop("main-"))
    for thread in threads:
        thread.join()
    assert len(stored) == 12
    assert {key: client.get_file_data(key) for key in stored} == stored
    assert sorted(client.list_keys(keys())) == sorted(stored)


def test_new_files_cancelled_at_any_point_leave_their_bytes_under_one_key_at_most(
    mogile_target: Target, client: Client, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    """store_new_file tasks cancelled at random points (a client that went
    away): a save that completed holds its bytes under the key it returned;
    a cancelled one leaves its bytes under one key at most: a target only
    when the rename under way took effect, which is logged with its fid, or
    its staging key (a create_close that committed after the cancel)."""
    aclient = AsyncClient(mogile_target.domain, mogile_target.trackers)
    rng = random.Random(11)
    saved: dict[str, bytes] = {}

    async def save(tag: str) -> None:
        data = f"content of {tag};".encode() * 1000
        key = await aclient.store_new_file(
            [keys(f"file{index}") for index in range(40)],
            io.BytesIO(data),
            "thumb",
            staging_key=keys(f"staging/{tag}"),
        )
        saved[key] = data

    async def work() -> int:
        cancelled = 0
        async with aclient:
            for round_ in range(8):
                tasks = [asyncio.create_task(save(f"{round_}-{n}")) for n in range(4)]
                await asyncio.sleep(rng.uniform(0, 0.03))
                for task in tasks:
                    cancelled += task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        return cancelled

    assert asyncio.run(work())
    left = {key: client.get_file_data(key) for key in client.iter_keys(keys())}
    assert {key: left[key] for key in saved} == saved
    orphans = {key: data for key, data in left.items() if key not in saved}
    contents = [data.split(b";")[0] for data in orphans.values()]
    assert len(set(contents)) == len(contents)  # each a cancelled save's own, once
    # A staging key a create_close committed after the cancel (mogilefs_audit clears it).
    orphans = {key: data for key, data in orphans.items() if "/staging/" not in key}
    logged = {
        record.args[1]  # type: ignore[index]
        for record in caplog.records
        if record.getMessage().startswith("storing") and "was interrupted" in record.message
    }
    assert set(orphans) <= logged


def test_a_read_cancelled_mid_body_keeps_the_md5_check(hangable: Hangable) -> None:
    """A whole read with an MD5, cancelled mid-body and read on, is still
    checked: bytes that differ from the MD5 end in ChecksumMismatchError,
    never handed out as the file."""
    with pytest.raises(ChecksumMismatchError):
        read_on_after_a_cancelled_read(
            hangable, os.urandom(16 << 20), md5=hashlib.md5(b"other bytes").hexdigest()
        )


def cancelled_after(pool: AsyncTrackerPool, command: str) -> Callable[..., Any]:
    """``pool.call`` whose first ``command`` is carried out by the tracker, and
    then raises CancelledError: the task was cancelled while its reply was on
    the way (a timing no real cancel can be made to hit every time)."""
    call = pool.call
    hit: list[str] = []

    async def cancelling(name: str, args: Mapping[str, Any], **settings: Any) -> Any:
        answer = await call(name, args, **settings)
        if name == command and not hit:
            hit.append(name)
            raise asyncio.CancelledError
        return answer

    return cancelling


@pytest.mark.parametrize("command", ["create_close", "rename"])
def test_a_new_file_cancelled_as_its_request_took_effect(
    mogile_target: Target,
    client: Client,
    keys: Keys,
    caplog: pytest.LogCaptureFixture,
    command: str,
) -> None:
    """Cancelled as the staging key's create_close commits, store_new_file
    deletes the staging key; cancelled as the rename onto the target takes
    effect, it logs the target and fid (the file is not deleted there:
    another writer may replace it meanwhile)."""
    aclient = AsyncClient(mogile_target.domain, mogile_target.trackers)
    aclient.trackers.call = cancelled_after(aclient.trackers, command)  # type: ignore[method-assign]

    async def work() -> None:
        async with aclient:
            await aclient.store_new_file(
                [keys("target")], io.BytesIO(b"cancelled"), "thumb", staging_key=keys("staging")
            )

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(work())
    left = client.list_keys(keys())
    if command == "create_close":
        assert left == []
    else:
        assert left == [keys("target")]
        fid = client.file_info(keys("target")).fid
        assert (
            f"storing {keys('staging')!r} was interrupted while renaming it onto "
            f"{keys('target')!r}: that key may hold the file (fid {fid})" in caplog.text
        )


def test_stores_cancelled_at_any_point_leave_the_old_bytes_or_the_new(
    mogile_target: Target, client: Client, keys: Keys
) -> None:
    """store_file tasks overwriting keys, cancelled at random points (mid
    create_open, upload or create_close): each key holds its old bytes or
    the new ones, whole, and the loop's connections serve on."""
    aclient = AsyncClient(mogile_target.domain, mogile_target.trackers, chunk_size=CHUNK)
    rng = random.Random(5)
    old = {keys(f"{index}"): b"old %d" % index for index in range(6)}
    for key, data in old.items():
        client.store_content(key, data, "thumb")
    new = {key: os.urandom(rng.randrange(1, 3 << 20)) for key in old}
    client.store_content(keys("steady"), b"steady", "thumb")

    async def work() -> int:
        cancelled = 0
        async with aclient:
            for _ in range(4):
                tasks = [
                    asyncio.create_task(aclient.store_content(key, data, "thumb"))
                    for key, data in new.items()
                ]
                await asyncio.sleep(rng.uniform(0, 0.04))
                cancelled += sum(task.cancel() for task in tasks)
                await asyncio.gather(*tasks, return_exceptions=True)
            assert await aclient.get_file_data(keys("steady")) == b"steady"
        return cancelled

    assert asyncio.run(work())
    for key, data in old.items():
        assert settled_data(client, key) in (data, new[key])


def settled_data(client: Client, key: str) -> bytes:
    """The bytes of ``key`` once a create_close of it that a cancelled task
    left running has ended: mogilefsd deletes a key's old file before it
    records the new one, so until then the key is unknown (not so on the dev
    MogileFS, docs/devserver.md). A key still unknown after 10 s was lost."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return client.get_file_data(key)
        except UnknownKeyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_slow_upload_source_is_not_taken_for_a_silent_node(client: Client, keys: Keys) -> None:
    """An async body that takes longer than the progress timeout to give its
    next chunk (the caller's source is slow, not the node) is waited for:
    the node takes every byte it is given, so it is neither given up nor
    rested, as the blocking nodes do."""
    client.store_content(keys("slow"), b"x", "thumb")
    (url,) = client.get_paths(keys("slow"))
    storage = AsyncStorageNodes(
        connect_timeout=3.0, http_timeout=30.0, progress_timeout=0.3, backoff=5.0
    )

    async def slow_source() -> AsyncIterator[bytes]:
        for _ in range(3):
            await asyncio.sleep(0.6)
            yield b"slow"

    async def work() -> None:
        try:
            await storage.put(url, slow_source(), 12, failover=True)
        finally:
            await storage.aclose()

    asyncio.run(work())
    assert not storage.wary(url)
    assert client.nodes.head(url).length == 12


def test_an_async_body_to_a_hung_node_is_still_given_up(hangable: Hangable) -> None:
    """The other side of the test above: an async body the node stops taking
    is given up after the progress timeout when another destination is left."""
    client = hangable.client()
    key = f"review-async/{os.urandom(8).hex()}"
    client.store_content(key, b"x", "thumb")
    (url,) = client.get_paths(key)
    storage = AsyncStorageNodes(
        connect_timeout=3.0, http_timeout=PATIENCE, progress_timeout=0.5, backoff=5.0
    )
    chunk = b"y" * CHUNK

    async def body() -> AsyncIterator[bytes]:
        for _ in range(512):  # 32 MiB: more than the sockets' buffers hold
            yield chunk

    async def work() -> None:
        try:
            with pytest.raises(StorageNodeError, match="no byte for 0.5 s"):
                await asyncio.wait_for(storage.put(url, body(), 512 * CHUNK, failover=True), 10)
        finally:
            await storage.aclose()

    with hangable.hang(url):
        asyncio.run(work())
    assert storage.wary(url)
    storage.health.close()
    client.delete(key)
    client.close()


def test_a_save_whose_event_loop_closed_under_it_ends_quietly(
    mogile_target: Target, client: Client, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store_new_file task left pending when its event loop closes (a
    server's shutdown) is closed by the garbage collector: its operation
    must end there, not try to send the staging key's delete from a closed
    coroutine (``RuntimeError: generator ignored GeneratorExit``)."""
    unraisable: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda raised: unraisable.append(repr(raised)))
    aclient = AsyncClient(mogile_target.domain, mogile_target.trackers)
    call = aclient.trackers.call
    renaming = asyncio.Event()

    async def rename_never_answered(name: str, args: Mapping[str, Any], **settings: Any) -> Any:
        if name == "rename":
            renaming.set()
            await asyncio.get_running_loop().create_future()
        return await call(name, args, **settings)

    aclient.trackers.call = rename_never_answered  # type: ignore[method-assign]
    loop = asyncio.new_event_loop()
    saving = loop.create_task(
        aclient.store_new_file(
            [keys("target")], io.BytesIO(b"left"), "thumb", staging_key=keys("staging")
        )
    )
    loop.run_until_complete(renaming.wait())
    loop.run_until_complete(aclient.aclose())
    loop.close()
    del saving
    gc.collect()
    assert unraisable == []

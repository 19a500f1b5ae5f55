"""Storage-node I/O from asyncio (storages_mogile.client.aionodes): the blocking reader's rules.

Files are stored and located with the blocking Client, then read, described
and written with AsyncStorageNodes and AsyncNodeReader over real sockets:
the MogileFS under test (dev or real), the dev MogileFS's fault controls,
hung nodes (tests/client/test_hung_nodes), and fake HTTP nodes
(tests/client/fakes) for faults that cannot be produced otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from storages_mogile.client import ChecksumMismatchError, Client, NoPathsError, StorageNodeError
from storages_mogile.client.aionodes import AsyncNodeReader, AsyncStorageNodes
from storages_mogile.client.files import InputReadError, UploadSource
from storages_mogile.client.health import PROBE_PAUSE
from storages_mogile.devserver import DevCluster

from .conftest import Keys
from .fakes import FakeNode, closed_port
from .test_checksums import DATA, MD5, flipped, with_a_damaged_copy
from .test_damaged_copies import damage, two_paths
from .test_fork import reads_at_once_after_fork
from .test_hung_nodes import BOUND, PATIENCE, PROGRESS, Hangable, hangable, two_copies
from .test_transfers import nodes

__all__ = ["hangable", "nodes"]  # the fixtures, shared with the blocking tests

T = TypeVar("T")
CHUNK = 64 << 10


def async_nodes(**options: float) -> AsyncStorageNodes:
    """AsyncStorageNodes with the Client's default settings, or those given."""
    settings = {
        "connect_timeout": 3.0,
        "http_timeout": 30.0,
        "progress_timeout": 5.0,
        "backoff": 5.0,
        **options,
    }
    return AsyncStorageNodes(**settings)


def run(nodes: AsyncStorageNodes, work: Callable[[], Awaitable[T]]) -> T:
    """``await work()`` in a new event loop, closing the loop's node connections after."""

    async def main() -> T:
        try:
            return await work()
        finally:
            await nodes.aclose()

    return asyncio.run(main())


async def read_whole(reader: AsyncNodeReader) -> bytes:
    """Everything ``reader`` gives with ``async for``, closing it after."""
    async with reader:
        return b"".join([chunk async for chunk in reader])


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 7])
def test_reads_of_every_size_give_what_the_blocking_reader_gives(
    client: Client, keys: Keys, size: int
) -> None:
    data = os.urandom(size)
    client.store_content(keys("f"), data, "thumb")
    location = client.locate(keys("f"))
    with client.read_file(keys("f")) as blocking:
        assert blocking.read() == data
    nodes = async_nodes()

    async def work() -> None:
        reader = AsyncNodeReader(
            nodes, location.paths, key=keys("f"), size=location.size, chunk_size=CHUNK
        )
        async with reader:
            assert (reader.url, reader.size) == (blocking.url, size)
            assert reader.last_modified == blocking.last_modified
            chunks = [chunk async for chunk in reader]
        assert b"".join(chunks) == data
        assert all(0 < len(chunk) <= CHUNK for chunk in chunks)  # as they arrived, never empty
        reader = AsyncNodeReader(nodes, location.paths, key=keys("f"), chunk_size=CHUNK)
        assert await reader.read() == data  # without the size: the node's length
        assert await reader.read(1) == b""
        await reader.aclose()
        pieces = AsyncNodeReader(nodes, location.paths, key=keys("f"), size=size)
        read = b""
        while piece := await pieces.read(1000):
            assert 0 < len(piece) <= 1000
            read += piece
        assert read == data
        await pieces.aclose()

    run(nodes, work)


def test_ranged_reads(client: Client, keys: Keys) -> None:
    data = bytes(range(256)) * 64
    client.store_content(keys("r"), data)
    paths, size, *_ = client.locate(keys("r"))
    nodes = async_nodes()

    async def work() -> None:
        for offset, length in [(0, 1), (10, 100), (16000, None), (len(data) - 1, 5), (0, 0)]:
            reader = AsyncNodeReader(
                nodes, paths, key=keys("r"), offset=offset, length=length, size=size
            )
            end = None if length is None else offset + length
            assert await read_whole(reader) == data[offset:end], (offset, length)
            assert reader.size == len(data)
        for offset in (len(data), len(data) + 10):
            reader = AsyncNodeReader(nodes, paths, key=keys("r"), offset=offset)
            assert await read_whole(reader) == b""
        with pytest.raises(ValueError, match="offset must be >= 0"):
            AsyncNodeReader(nodes, paths, key=keys("r"), offset=-1)

    run(nodes, work)


def test_head_and_put_answer_as_the_blocking_nodes_do(
    client: Client, keys: Keys, tmp_path: Path
) -> None:
    """HEAD gives the blocking NodeStat; PUT sends an async iterator with its
    Content-Length, a blocking upload source, or chunks of unknown length."""
    client.store_content(keys("p"), b"first version", "thumb")
    (url,) = client.get_paths(keys("p"))
    nodes = async_nodes()
    source_file = tmp_path / "source"
    source_file.write_bytes(b"from a file " * 1000)

    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"async ", b"iterator"):
            yield part

    async def work() -> None:
        assert await nodes.head(url) == client.nodes.head(url)
        await nodes.put(url, chunks(), len(b"async iterator"))
        assert (await nodes.head(url)).length == len(b"async iterator")
        with source_file.open("rb") as file:
            source = UploadSource(file, CHUNK, key=keys("p"))
            await nodes.put(url, source.chunks(), source.length)
        assert await read_whole(AsyncNodeReader(nodes, [url], key="p")) == (
            source_file.read_bytes()
        )
        await nodes.put(url, iter([b"no ", b"length"]), None)
        assert await read_whole(AsyncNodeReader(nodes, [url], key="p")) == b"no length"

    run(nodes, work)


def test_a_failing_source_is_raised_as_itself_and_the_node_is_not_blamed(
    nodes: list[FakeNode],
) -> None:
    node = FakeNode()
    nodes.append(node)
    storage = async_nodes()

    def failing() -> Iterator[bytes]:
        yield b"x" * CHUNK
        raise InputReadError(OSError("disk on fire"))

    async def work() -> None:
        with pytest.raises(InputReadError, match="disk on fire"):
            await storage.put(node.url + "/dev1/f.fid", failing(), 2 * CHUNK)

    run(storage, work)
    assert not storage.wary(node.url + "/dev1/f.fid")
    assert all(len(body) < 2 * CHUNK for body in node.stored.values())  # never whole


def test_a_put_answered_non_2xx_raises_with_the_status(nodes: list[FakeNode]) -> None:
    node = FakeNode(put_status=507)
    nodes.append(node)
    storage = async_nodes()

    async def work() -> None:
        with pytest.raises(StorageNodeError, match="answered HTTP 507") as raised:
            await storage.put(node.url + "/dev1/f.fid", [b"data"], 4)
        assert raised.value.status == 507

    run(storage, work)


def test_a_read_falls_through_missing_and_refusing_copies(client: Client, keys: Keys) -> None:
    client.store_content(keys("m"), b"the file", "thumb")
    (good,) = client.get_paths(keys("m"))
    missing = good.rsplit("/", 1)[0] + "/9999999999.fid"
    refused = f"http://{closed_port()}/dev1/0/000/000/0000000001.fid"
    nodes = async_nodes()

    async def work() -> None:
        reader = AsyncNodeReader(nodes, [missing, refused, good], key=keys("m"), size=8)
        assert await read_whole(reader) == b"the file"
        assert reader.url == good
        with pytest.raises(NoPathsError) as raised:
            await AsyncNodeReader(nodes, [missing, refused], key=keys("m")).open()
        assert [url for url, _ in raised.value.attempts] == [missing, refused]
        assert "HTTP 404" in str(raised.value)

    run(nodes, work)
    assert nodes.wary(refused) and not nodes.wary(missing)


def test_a_copy_of_another_length_is_never_read(client: Client, keys: Keys) -> None:
    data = os.urandom(1_000_000)
    client.store_content(keys("d"), data, "avatar")
    paths = two_paths(client, keys("d"))
    damage(paths[0], b"x" * 1000)
    nodes = async_nodes()

    async def work() -> None:
        for order in (paths, paths[::-1]):
            reader = AsyncNodeReader(nodes, order, key=keys("d"), size=len(data))
            assert await read_whole(reader) == data
            assert reader.url == paths[1]
            tail = AsyncNodeReader(
                nodes, order, key=keys("d"), offset=len(data) - 10, size=len(data)
            )
            assert await read_whole(tail) == data[-10:]

    run(nodes, work)


def test_a_mid_stream_cut_resumes_at_the_next_copy_with_a_range(nodes: list[FakeNode]) -> None:
    data = bytes(range(256)) * 40
    cut, good = FakeNode(data, cut_after=3000), FakeNode(data)
    nodes.extend([cut, good])
    paths = [f"{node.url}/dev1/0/000/000/0000000007.fid" for node in (cut, good)]
    storage = async_nodes()

    async def work() -> None:
        reader = AsyncNodeReader(storage, paths, key="k", offset=1000, length=5000, chunk_size=512)
        assert await read_whole(reader) == data[1000:6000]

    run(storage, work)
    assert cut.requests[0][2] == "bytes=1000-5999"
    # From the byte reached (what aiohttp had buffered when the cut came may be lost).
    [(method, path, resumed)] = good.requests
    start, end = (int(byte) for byte in resumed.removeprefix("bytes=").split("-"))
    assert (method, path, end) == ("GET", "/dev1/0/000/000/0000000007.fid", 5999)
    assert 1000 <= start <= 4000


def test_a_node_ignoring_range_is_skipped_to_the_offset(nodes: list[FakeNode]) -> None:
    data = bytes(range(256)) * 40
    node = FakeNode(data, ignore_range=True)
    nodes.append(node)
    storage = async_nodes()

    async def work() -> None:
        reader = AsyncNodeReader(
            storage, [node.url + "/dev1/f.fid"], key="k", offset=5000, length=10
        )
        assert await read_whole(reader) == data[5000:5010]
        assert reader.size == len(data)

    run(storage, work)


def test_a_node_stopped_mid_read_is_left_for_the_next_copy(dev_cluster: DevCluster) -> None:
    """The dev node's stop() drops its open connections: the read goes on at
    the other copy from the byte it reached."""
    client = Client("testdomain", dev_cluster.trackers)
    data = os.urandom(32 << 20)  # more than the sockets' buffers hold
    paths = two_copies(client, "killed/key", data)
    first = next(node for node in dev_cluster.nodes if paths[0].startswith(node.url + "/"))
    storage = async_nodes()

    async def work() -> None:
        digest = hashlib.md5()
        reader = AsyncNodeReader(storage, paths, key="killed/key", size=len(data), md5=None)
        async with reader:
            digest.update(await reader.read(CHUNK))
            assert reader.url == paths[0]
            first.stop()
            async for chunk in reader:
                digest.update(chunk)
            assert reader.url == paths[1]
        assert digest.hexdigest() == hashlib.md5(data).hexdigest()

    try:
        run(storage, work)
    finally:
        first.start()
    client.close()


def test_a_damaged_copy_of_the_same_length_is_skipped_by_a_verifying_read(
    client: Client, keys: Keys, md5_class: str
) -> None:
    bad, good = with_a_damaged_copy(client, keys("damaged"), md5_class)
    nodes = async_nodes()
    found: list[str] = []

    async def work() -> None:
        unchecked = AsyncNodeReader(nodes, [bad, good], key=keys("damaged"), size=len(DATA))
        assert await unchecked.read() != DATA
        await unchecked.aclose()
        whole = AsyncNodeReader(
            nodes,
            [bad, good],
            key=keys("damaged"),
            size=len(DATA),
            md5=MD5,
            on_damaged=found.append,
        )
        assert await whole.read() == DATA
        assert whole.url == good
        await whole.aclose()
        one_chunk = AsyncNodeReader(
            nodes, [bad, good], key=keys("damaged"), size=len(DATA), md5=MD5
        )
        async with one_chunk:
            assert await one_chunk.read(len(DATA) + 1) == DATA
            assert await one_chunk.read(1) == b""

    run(nodes, work)
    assert found == [bad]


def test_a_streamed_read_of_a_damaged_copy_ends_in_an_error_before_its_last_bytes(
    client: Client, keys: Keys, md5_class: str
) -> None:
    bad, good = with_a_damaged_copy(client, keys("streamed"), md5_class)
    nodes = async_nodes()

    async def work() -> bytes:
        read = b""
        reader = AsyncNodeReader(
            nodes, [bad, good], key=keys("streamed"), size=len(DATA), md5=MD5, chunk_size=CHUNK
        )
        with pytest.raises(ChecksumMismatchError) as caught:
            async with reader:
                async for chunk in reader:
                    read += chunk
        assert caught.value.url == bad
        assert caught.value.actual == hashlib.md5(flipped(DATA)).hexdigest()
        return read

    read = run(nodes, work)
    assert 0 < len(read) < len(DATA)  # a damaged copy is never delivered whole


def test_every_copy_damaged_raises(client: Client, keys: Keys, md5_class: str) -> None:
    bad, good = with_a_damaged_copy(client, keys("lost"), md5_class)
    damage(good, flipped(DATA))
    nodes = async_nodes()

    async def work() -> None:
        reader = AsyncNodeReader(nodes, [bad, good], key=keys("lost"), size=len(DATA), md5=MD5)
        with pytest.raises(ChecksumMismatchError):
            async with reader:
                await reader.read()

    run(nodes, work)


def test_a_read_moves_on_from_a_hung_copy_and_resumes_when_one_hangs_mid_stream(
    hangable: Hangable,
) -> None:
    client = hangable.client()
    data = os.urandom(32 << 20)
    key = f"hung-async/{os.urandom(8).hex()}"
    hung_url, alive_url = two_copies(client, key, data)
    storage = async_nodes(progress_timeout=PROGRESS, http_timeout=PATIENCE)

    async def before_the_first_byte() -> None:
        started = time.monotonic()
        reader = AsyncNodeReader(storage, [hung_url, alive_url], key=key, size=len(data))
        async with reader:
            assert reader.url == alive_url
            assert hashlib.md5(await reader.read()).digest() == hashlib.md5(data).digest()
        assert time.monotonic() - started < BOUND

    with hangable.hang(hung_url):
        run(storage, before_the_first_byte)
    client.nodes.health.close()
    storage.health.close()  # both nodes usable again

    async def mid_stream() -> None:
        digest = hashlib.md5()
        reader = AsyncNodeReader(storage, [hung_url, alive_url], key=key, size=len(data))
        async with reader:
            digest.update(await reader.read(CHUNK))
            assert reader.url == hung_url
            with hangable.hang(hung_url):
                started = time.monotonic()
                async for chunk in reader:
                    digest.update(chunk)
                assert time.monotonic() - started < BOUND
            assert reader.url == alive_url
        assert digest.digest() == hashlib.md5(data).digest()

    run(storage, mid_stream)
    client.delete(key)


def test_no_request_goes_to_a_hanging_node_but_one_resumed_a_moment_ago_serves(
    hangable: Hangable,
) -> None:
    """Concurrent reads whose only copy is on a hanging node give up at once
    (each waits for the probe a moment, in a thread, not blocking the loop);
    a read of a node resumed while it waits is served."""
    client = hangable.client()
    key = f"hung-async-one/{os.urandom(8).hex()}"
    hung_url, alive_url = two_copies(client, key, b"two copies")
    storage = async_nodes(progress_timeout=2.0, http_timeout=PATIENCE)

    async def read_the_hung_copy() -> str:
        try:
            await AsyncNodeReader(storage, [hung_url], key=key).open()
        except NoPathsError as exc:
            return str(exc)
        return "served"

    async def work() -> list[str]:
        reader = AsyncNodeReader(storage, [hung_url, alive_url], key=key)
        assert await read_whole(reader) == b"two copies"  # the hung node failed once
        await asyncio.sleep(PROBE_PAUSE * 2)  # its probe has waited a while: it hangs
        started = time.monotonic()
        failures = await asyncio.gather(*(read_the_hung_copy() for _ in range(8)))
        assert time.monotonic() - started < 2.0  # none waited the progress timeout
        return failures

    with hangable.hang(hung_url):
        failures = run(storage, work)
    assert len(failures) == 8
    assert all("has not answered a probe since" in failure for failure in failures)

    async def resumed_while_waiting() -> None:
        reader = AsyncNodeReader(storage, [hung_url, alive_url], key=key)
        assert await read_whole(reader) == b"two copies"
        await asyncio.sleep(PROBE_PAUSE * 2)
        threading.Timer(0.05, held.close).start()  # resumed while the read waits
        assert await read_whole(AsyncNodeReader(storage, [hung_url], key=key)) == b"two copies"

    with contextlib.ExitStack() as held:
        held.enter_context(hangable.hang(hung_url))
        run(storage, resumed_while_waiting)
    client.delete(key)


def test_an_upload_gives_a_hung_destination_up_unless_it_is_the_last(
    hangable: Hangable,
) -> None:
    """A destination that takes no byte is given up after the progress
    timeout when another is left (the body's writes are watched too, not
    only the answer), and waited for up to ``http_timeout`` when it is the last."""
    client = hangable.client()
    key = f"hung-async-put/{os.urandom(8).hex()}"
    client.store_content(key, b"x", "thumb")
    (url,) = client.get_paths(key)
    storage = async_nodes(progress_timeout=PROGRESS, http_timeout=PATIENCE)
    big = b"y" * (32 << 20)  # more than the sockets' buffers hold

    async def failover() -> None:
        started = time.monotonic()
        with pytest.raises(StorageNodeError, match="no byte for 0.5 s"):
            chunks = [big[start : start + CHUNK] for start in range(0, len(big), CHUNK)]
            await storage.put(url, chunks, len(big), failover=True)
        assert time.monotonic() - started < BOUND
        assert storage.wary(url)

    with hangable.hang(url):
        run(storage, failover)
    storage.health.close()

    async def last() -> None:
        threading.Timer(PROGRESS * 4, held.close).start()  # resumed after 4 progress timeouts
        await storage.put(url, [b"waited for"], 10)

    with contextlib.ExitStack() as held:
        held.enter_context(hangable.hang(url))
        run(storage, last)
    assert client.nodes.head(url).length == 10
    client.delete(key)
    client.close()


def test_a_read_cancelled_mid_stream_leaves_no_connection_open(client: Client, keys: Keys) -> None:
    """A task cancelled mid-body (a client that went away) closes its
    connection in the reader's aclose (the ``async with`` block's end); the
    test suite turns an unclosed socket's ResourceWarning into an error."""
    data = os.urandom(8 << 20)
    client.store_content(keys("c"), data, "thumb")
    paths, size, *_ = client.locate(keys("c"))
    nodes = async_nodes()
    readers: list[AsyncNodeReader] = []

    async def reading(started: asyncio.Event) -> None:
        reader = AsyncNodeReader(nodes, paths, key=keys("c"), size=size, chunk_size=CHUNK)
        readers.append(reader)
        async with reader:
            async for _ in reader:
                started.set()
                await asyncio.sleep(0.01)  # a slow consumer

    async def work() -> None:
        for _ in range(3):
            started = asyncio.Event()
            task = asyncio.create_task(reading(started))
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert all(reader.closed for reader in readers)
        # The loop's connections still serve whole, clean reads.
        assert await read_whole(AsyncNodeReader(nodes, paths, key=keys("c"), size=size)) == data

    run(nodes, work)
    readers.clear()
    gc.collect()  # an unclosed transport would warn now, failing this test


def test_a_read_cancelled_while_a_hung_node_holds_it_leaves_no_connection_open(
    hangable: Hangable,
) -> None:
    """A task cancelled while its request waits on a hung node (a client gone
    under ASGI) leaves no socket behind, and the node is not taken for failed."""
    client = hangable.client()
    key = f"hung-async-cancel/{os.urandom(8).hex()}"
    hung_url, alive_url = two_copies(client, key, b"two copies")
    storage = async_nodes(progress_timeout=PATIENCE, http_timeout=PATIENCE)

    async def work() -> None:
        reader = AsyncNodeReader(storage, [hung_url, alive_url], key=key)
        task = asyncio.create_task(read_whole(reader))
        await asyncio.sleep(PROGRESS)  # the GET went out and waits for its answer
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert reader.closed

    with hangable.hang(hung_url):
        run(storage, work)
    assert not storage.wary(hung_url)
    gc.collect()  # an unclosed transport would warn now, failing this test
    client.delete(key)


# Python 3.12+ warns that fork() in a process with threads (the dev MogileFS's) may deadlock.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_reads_on_its_own_loop_and_connections(client: Client, keys: Keys) -> None:
    """The parent keeps a loop with a kept-alive connection and forks; parent
    and child read at once, the child in a loop of its own: neither gets the
    other's bytes."""
    data = os.urandom(230_000)
    half = len(data) // 2
    client.store_content(keys("forked"), data, "thumb")  # one copy: every read goes to one node
    paths = client.get_paths(keys("forked"))
    nodes = async_nodes()

    async def read_part(offset: int) -> bytes | str:
        reader = AsyncNodeReader(nodes, paths, key=keys("forked"), offset=offset, length=half)
        try:
            return await read_whole(reader)
        except (NoPathsError, StorageNodeError) as exc:
            return repr(exc)

    loop = asyncio.new_event_loop()
    wrong = []
    try:
        for round_ in range(30):
            assert loop.run_until_complete(read_part(0)) == data[:half]
            failed = reads_at_once_after_fork(
                lambda: loop.run_until_complete(read_part(0)) == data[:half],
                lambda: run(nodes, lambda: read_part(half)) == data[half:],
            )
            wrong += [f"round {round_}: {what}" for what in failed]
        loop.run_until_complete(nodes.aclose())
    finally:
        loop.close()
    assert wrong == []


def test_sessions_are_per_event_loop(nodes: list[FakeNode]) -> None:
    node = FakeNode(b"data")
    nodes.append(node)
    storage = async_nodes()
    url = node.url + "/dev1/f.fid"

    def in_a_thread() -> None:
        run(storage, lambda: read_whole(AsyncNodeReader(storage, [url], key="k")))

    for _ in range(2):
        run(storage, lambda: read_whole(AsyncNodeReader(storage, [url], key="k")))
    assert node.connections == 2  # aclose() closed the first loop's connection
    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert node.connections == 3

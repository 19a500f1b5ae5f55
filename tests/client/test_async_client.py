"""The asyncio client (storages_mogile.client.aioclient): the sync Client's
operations, driven over asyncio, with the same answers and errors.

Each scenario of ``test_the_sync_and_the_async_client_agree`` runs once with
a :class:`Client` and once with an :class:`AsyncClient`, each under keys of
its own, and their outcomes (answers, or the errors raised, with the keys'
prefix taken out) must be equal. They run on the dev MogileFS and the real
one (SQLite, MariaDB: the spelling scenarios meet a folding tracker there).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import io
import os
import random
import re
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from storages_mogile.client import (
    Client,
    FileInfo,
    KeyExistsError,
    Location,
    MogileFSError,
    TrackerUnavailableError,
    UnknownKeyError,
    UnrewindableSourceError,
)
from storages_mogile.client.aioclient import AsyncClient
from storages_mogile.client.nodes import NodeStat
from storages_mogile.devserver import DevCluster
from tests.conftest import Target

from .conftest import Keys, after_file_info
from .fakes import closed_port
from .test_roundtrip import RAW_KEY, wait_for
from .test_transfers import NonSeekable

#: A scenario's step: a method name and its arguments, for either client.
Do = Callable[..., object]

#: What a step may raise: the client's errors, bad arguments, the caller's file's errors.
FAILURES = (MogileFSError, ValueError, TypeError, OSError)


class SyncSide:
    """Runs methods on a Client; an outcome is the answer or the error raised."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> object:
        try:
            if method == "read":  # read_file, read whole
                with self.client.read_file(*args, **kwargs) as reader:
                    return reader.readall()
            answer = getattr(self.client, method)(*args, **kwargs)
            return list(answer) if method == "iter_keys" else answer
        except FAILURES as exc:
            return exc

    def close(self) -> None:
        self.client.close()


class AsyncSide:
    """Runs methods on an AsyncClient, in one event loop of its own."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.runner = asyncio.Runner()

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> object:
        return self.runner.run(self._outcome(method, args, kwargs))

    async def _outcome(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
        try:
            if method == "read":
                async with await self.client.read_file(*args, **kwargs) as reader:
                    return await reader.read()
            if method == "iter_keys":
                return [key async for key in self.client.iter_keys(*args, **kwargs)]
            return await getattr(self.client, method)(*args, **kwargs)
        except FAILURES as exc:
            return exc

    def close(self) -> None:
        self.runner.run(self.client.aclose())
        self.runner.close()


def comparable(outcome: object, prefix: str) -> object:
    """An outcome with what differs between two runs taken out: the keys'
    prefix, fids, the URLs' hosts and the order of paths, the tracker that
    answered an error."""
    if isinstance(outcome, BaseException):
        fields = {
            name: getattr(outcome, name)
            for name in ("code", "message", "command", "key", "domain", "prefix", "after")
            if hasattr(outcome, name)
        }
        text = str(outcome) if not hasattr(outcome, "tracker") else ""
        outcome = (type(outcome).__name__, fields, text)
    elif isinstance(outcome, FileInfo):
        outcome = dataclasses.replace(outcome, fid=0)
    elif isinstance(outcome, NodeStat):
        outcome = ("NodeStat", outcome.length, outcome.last_modified is not None)
    elif isinstance(outcome, Location):
        outcome = outcome._replace(paths=len(outcome.paths), fid=None)
    text = repr(outcome).replace(prefix, "<keys>/")
    return re.sub(r"http://[^/\s]+/dev\d+/[\d/]+\.fid", "<copy>", text)


def store(client: Client, key: str, data: bytes = b"data", cls: str | None = "thumb") -> None:
    client.store_content(key, data, cls)


# The scenarios: each stores what it needs with the sync client ``setup`` and
# returns the outcomes of its steps (``do``) under the keys ``k``.


def file_info(do: Do, k: Callable[[str], str], setup: Client) -> list[object]:
    store(setup, k("a"), b"five!")
    return [
        do("file_info", k("a")),
        do("exact_file_info", k("a")),
        do("file_info", k("missing")),
        do("file_info", ""),
        do("file_info", 5),
        do("file_info", "\ud800 lone surrogate"),
    ]


def paths(do: Do, k: Callable[[str], str], setup: Client) -> list[object]:
    store(setup, k("a"), b"x" * 1000, "avatar")
    setup.wait_for_copies(k("a"), 2, 30)
    return [
        len(do("get_paths", k("a"))),  # type: ignore[arg-type]
        len(do("get_paths", k("a"), pathcount=1)),  # type: ignore[arg-type]
        do("get_paths", k("missing")),
        do("locate", k("a")),
        do("locate", k("a"), noverify=True, pathcount=1),
        do("locate", k("missing")),
    ]


def listing(do: Do, k: Callable[[str], str], setup: Client) -> list[object]:
    names = ["a", "b/1", "b/2", "b/3", "(b)", "b.x", "c"]
    for name in names:
        store(setup, k(name))
    return [
        do("list_keys", k("")),
        do("list_keys", k("b/"), limit=2),
        do("list_keys", k("b/"), k("b/1")),
        do("list_keys", k("nothing")),
        do("list_keys", k(""), limit=0),
        do("iter_keys", k("")),
        do("iter_keys", k("b"), page_size=1),
        do("iter_keys", k("(b"), page_size=2),
        do("iter_keys", k("b."), page_size=1),
        do("iter_keys", k("nothing")),
    ]


def rename(do: Do, k: Callable[[str], str], setup: Client) -> list[object]:
    store(setup, k("a"), b"aaa")
    store(setup, k("b"), b"bb")
    return [
        do("rename", k("a"), k("b")),
        do("rename", k("missing"), k("c")),
        do("rename", k("a"), k("a")),
        do("rename", k("a"), k("c")),
        do("file_info", k("c")),
        do("file_info", k("a")),
        do("rename", k("c"), ""),
    ]


def delete(do: Do, k: Callable[[str], str], setup: Client) -> list[object]:
    store(setup, k("a"))
    return [
        do("delete", k("a")),
        do("delete", k("a")),
        do("file_info", k("a")),
        do("delete", None),
    ]


def update_class(do: Do, k: Callable[[str], str], setup: Client) -> list[object]:
    store(setup, k("a"), b"a", "thumb")
    return [
        do("update_class", k("a"), "avatar"),
        do("file_info", k("a")),
        do("update_class", k("a"), "no-such-class"),
        do("update_class", k("missing"), "thumb"),
        do("update_class", k("a"), ""),
    ]


def copies(do: Do, k: Callable[[str], str], setup: Client) -> list[object]:
    store(setup, k("a"), b"a", "thumb")
    return [
        do("copies_wanted", "avatar"),
        do("copies_wanted", "thumb"),
        do("copies_wanted", None),
        do("copies_wanted", "no-such-class"),
        do("records_checksums", None),
        do("records_checksums", "thumb"),
        do("wait_for_copies", k("a"), 1, 5),
        do("wait_for_copies", k("a"), 9, 0.2),
        do("wait_for_copies", k("missing"), 1, 5),
    ]


def spellings(do: Do, k: Callable[[str], str], setup: Client) -> list[object]:
    """A tracker on MariaDB takes ``Photo.JPG`` and ``photo.jpg`` (and
    ``résumé.txt``, ``resume.txt`` and ``résumé.txt `` ) for one key: the
    exact-key rules must answer alike over both clients."""
    store(setup, k("Photo.JPG"), b"photo")
    store(setup, k("other"), b"other")
    store(setup, k("résumé.txt"), b"accents")
    fid = setup.file_info(k("Photo.JPG")).fid
    return [
        do("exact_file_info", k("resume.txt")),
        do("exact_file_info", k("résumé.txt ")),
        do("refuse_other_spelling", k("RESUME.txt")),
        do("rename", k("resume.txt"), k("moved")),
        do("exact_file_info", k("Photo.JPG")),
        do("exact_file_info", k("photo.jpg")),
        do("folds_keys", k("photo.jpg"), k("Photo.JPG")),
        do("spelt_otherwise", k("photo.jpg"), fid),
        do("spelt_otherwise", k("Photo.JPG"), fid),
        do("require_exact", k("photo.jpg"), fid, command="rename"),
        do("refuse_other_spelling", k("photo.jpg")),
        do("refuse_other_spelling", k("Photo.JPG")),
        do("rename", k("photo.jpg"), k("moved")),
        do("rename", k("other"), k("photo.jpg")),
        do("rename", k("Photo.JPG"), k("PHOTO.jpg")),
        do("iter_keys", k("")),
        do("iter_keys", k("P")),
    ]


def raw_bytes(do: Do, k: Callable[[str], str], setup: Client) -> list[object]:
    """A key that is not UTF-8: stored on SQLite, refused on MariaDB (KeyNotUTF8Error)."""
    store(setup, k("kept"), b"kept")
    return [
        do("rename", k("kept"), k(RAW_KEY)),
        do("list_keys", k("")),
        do("file_info", k(RAW_KEY)),
        do("delete", k(RAW_KEY)),
        do("rename", k("kept"), k("\udcc3\udca9")),  # escapes of valid UTF-8: refused
    ]


class BrokenFile(io.RawIOBase):
    """A binary file whose read fails after its first chunk (a disk error)."""

    def __init__(self) -> None:
        self.reads = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self.reads += 1
        if self.reads > 1:
            raise OSError(5, "Input/output error")
        buffer[:4] = b"part"
        return 4


def storing(do: Do, k: Callable[[str], str], setup: Client) -> list[object]:
    big = random.Random(17).randbytes(3 << 20)  # several chunks
    return [
        do("store_content", k("a"), b"hello", "thumb"),
        do("get_file_data", k("a")),
        do("store_file", k("a"), io.BytesIO(big), "thumb"),
        do("file_info", k("a")),
        do("get_file_data", k("a")) == big,
        do("store_file", k("stream"), NonSeekable(b"from a pipe")),
        do("get_file_data", k("stream")),
        do("store_file", k("from-offset"), seeked(b"skip:kept", 5)),
        do("get_file_data", k("from-offset")),
        do("store_content", k("b"), "text"),
        do("store_content", k("b"), b"x", "no-such-class"),
        do("store_content", "", b"x"),
        do("store_file", k("b"), io.StringIO("text mode")),
        do("store_file", k("b"), BrokenFile()),
        do("file_info", k("b")),
    ]


def seeked(data: bytes, position: int) -> io.BytesIO:
    stream = io.BytesIO(data)
    stream.seek(position)
    return stream


def reading(do: Do, k: Callable[[str], str], setup: Client) -> list[object]:
    data = random.Random(18).randbytes(100_000)
    store(setup, k("a"), data, "thumb")
    paths = setup.get_paths(k("a"))
    return [
        do("read", k("a")) == data,
        do("read", k("a"), offset=99_990),
        do("read", k("a"), offset=100, length=20) == data[100:120],
        do("read", k("a"), paths=paths, size=len(data)) == data,
        do("read", k("a"), paths=[]),
        do("read", k("a"), paths=paths, size=5),
        do("read", k("a"), md5="0" * 32),
        do("read", k("missing")),
        do("stat", k("a")),
        do("stat", k("a"), paths=paths, size=7),
        do("stat", k("a"), paths=[]),
        do("stat", k("missing")),
        do("get_file_data", k("missing")),
    ]


def saving_new(do: Do, k: Callable[[str], str], setup: Client) -> list[object]:
    """store_new_file: the first free key, never a taken one, no staging key left."""
    store(setup, k("taken"), b"theirs")
    return [
        do("store_new_file", [k("taken"), k("free")], io.BytesIO(b"new"), staging_key=k("s1")),
        do("store_new_file", [k("taken"), k("free")], io.BytesIO(b"new"), staging_key=k("s2")),
        do("store_new_file", iter([k("x"), ""]), io.BytesIO(b"new"), staging_key=k("s3")),
        do("store_new_file", [k("y")], io.BytesIO(b"new"), staging_key=""),
        do("get_file_data", k("taken")),
        do("get_file_data", k("free")),
        do("list_keys", k("")),
    ]


SCENARIOS = [
    *(file_info, paths, listing, rename, delete, update_class, copies, spellings, raw_bytes),
    *(storing, reading, saving_new),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
def test_the_sync_and_the_async_client_agree(
    mogile_target: Target, client: Client, keys: Keys, scenario: Callable[..., list[object]]
) -> None:
    outcomes = []
    for name, side in (
        ("sync", SyncSide(Client(mogile_target.domain, mogile_target.trackers))),
        ("async", AsyncSide(AsyncClient(mogile_target.domain, mogile_target.trackers))),
    ):
        prefix = keys(f"{name}/")
        try:
            found = scenario(side, lambda name, prefix=prefix: prefix + name, client)
        finally:
            side.close()
        outcomes.append([comparable(outcome, prefix) for outcome in found])
    sync, async_ = outcomes
    assert async_ == sync
    assert any("Error" in str(outcome) for outcome in sync)  # each meets an error too


@pytest.fixture
def aclient(mogile_target: Target) -> AsyncClient:
    """An AsyncClient of the MogileFS under test (each test's loop closes its connections)."""
    return AsyncClient(mogile_target.domain, mogile_target.trackers)


def run(aclient: AsyncClient, work: Callable[[], Any]) -> Any:
    """``await work()`` in a new event loop, closing the client's connections after."""

    async def main() -> Any:
        async with aclient:
            return await work()

    return asyncio.run(main())


def test_concurrent_tasks_of_one_client(aclient: AsyncClient, client: Client, keys: Keys) -> None:
    for index in range(20):
        store(client, keys(f"{index:02d}"), b"%d" % index)

    async def work() -> list[int]:
        lengths = asyncio.gather(*(aclient.file_info(keys(f"{i:02d}")) for i in range(10)))
        renames = asyncio.gather(
            *(aclient.rename(keys(f"{i:02d}"), keys(f"moved/{i:02d}")) for i in range(10, 20))
        )
        infos, _ = await asyncio.gather(lengths, renames)
        return [info.length for info in infos]

    assert run(aclient, work) == [len(b"%d" % index) for index in range(10)]
    assert client.list_keys(keys("moved/")) == [keys(f"moved/{i:02d}") for i in range(10, 20)]


def test_a_listing_left_early_and_another_event_loop(
    aclient: AsyncClient, client: Client, keys: Keys
) -> None:
    for index in range(5):
        store(client, keys(f"{index}"))

    async def first_two() -> list[str]:
        found = []
        async for key in aclient.iter_keys(keys(), page_size=1):
            found.append(key)
            if len(found) == 2:
                break
        return found

    assert run(aclient, first_two) == [keys("0"), keys("1")]
    assert run(aclient, lambda: aclient.list_keys(keys())) == [keys(f"{i}") for i in range(5)]


def test_failover_past_a_refusing_tracker(
    mogile_target: Target, client: Client, keys: Keys, in_given_order: None
) -> None:
    store(client, keys("a"), b"found")
    refused = closed_port()
    aclient = AsyncClient(mogile_target.domain, [refused, *mogile_target.trackers], backoff=30)

    async def work() -> list[int]:
        lengths = [(await aclient.file_info(keys("a"))).length]
        assert aclient.trackers.roster.order(None)[-1] == refused  # it rests now
        lengths.append((await aclient.file_info(keys("a"))).length)
        return lengths

    assert run(aclient, work) == [5, 5]


def test_failover_to_a_second_tracker_while_the_first_is_stopped(dev_cluster: DevCluster) -> None:
    first, second = dev_cluster.tracker_servers[0], dev_cluster.add_tracker()
    sync = Client("testdomain", dev_cluster.trackers)
    store(sync, "t/before", b"before")
    aclient = AsyncClient("testdomain", dev_cluster.trackers, backoff=0.2)

    async def work() -> None:
        first.stop()
        try:
            for index in range(6):  # enough calls to meet the stopped tracker at random
                await aclient.rename("t/before" if index == 0 else f"t/{index - 1}", f"t/{index}")
            assert await aclient.list_keys("t/") == ["t/5"]
            second.stop()
            with pytest.raises(TrackerUnavailableError) as caught:
                await aclient.file_info("t/5")
            assert first.address in str(caught.value) and second.address in str(caught.value)
        finally:
            first.start()
            second.start()
        assert (await aclient.file_info("t/5")).length == len(b"before")

    run(aclient, work)
    sync.close()


@pytest.mark.parametrize("act", [False, True], ids=["before-acting", "after-acting"])
def test_a_lost_rename_reply_is_settled(dev_cluster: DevCluster, act: bool) -> None:
    sync = Client("testdomain", dev_cluster.trackers)
    store(sync, "a", b"moved")
    dev_cluster.tracker_servers[0].tracker.drop_reply("rename", act=act)
    aclient = AsyncClient("testdomain", dev_cluster.trackers)
    run(aclient, lambda: aclient.rename("a", "b"))
    assert sync.get_file_data("b") == b"moved"
    with pytest.raises(UnknownKeyError):
        sync.file_info("a")
    sync.close()


def test_a_lost_rename_reply_while_the_target_was_taken(dev_cluster: DevCluster) -> None:
    """The target appears between the client's check and the rename, whose
    refusal's reply is lost too: settled as KeyExistsError, nothing replaced."""
    sync = Client("testdomain", dev_cluster.trackers)
    store(sync, "a", b"mine")
    tracker = dev_cluster.tracker_servers[0].tracker

    def race() -> None:
        store(sync, "b", b"theirs")
        tracker.drop_reply("rename", act=True)

    aclient = AsyncClient("testdomain", dev_cluster.trackers, timeout=1)
    aclient.trackers.call = after_file_info(aclient.trackers, "a", race)  # type: ignore[method-assign]
    with pytest.raises(KeyExistsError):
        run(aclient, lambda: aclient.rename("a", "b"))
    assert sync.get_file_data("a") == b"mine"
    assert sync.get_file_data("b") == b"theirs"
    sync.close()


def test_a_rename_whose_outcome_no_tracker_can_tell(dev_cluster: DevCluster) -> None:
    """The rename's reply is lost, and so are the replies of the lookups that
    would settle it: the outcome is unknown, and the error says so."""
    sync = Client("testdomain", dev_cluster.trackers)
    store(sync, "a", b"a")
    tracker = dev_cluster.tracker_servers[0].tracker

    def lose_the_replies() -> None:  # once the rename's own lookups are answered
        tracker.drop_reply("rename", act=True)
        tracker.drop_reply("file_info", act=True, count=100)

    aclient = AsyncClient("testdomain", dev_cluster.trackers, backoff=0)
    aclient.trackers.call = after_file_info(aclient.trackers, "b", lose_the_replies)  # type: ignore[method-assign]
    with pytest.raises(TrackerUnavailableError) as caught:
        run(aclient, lambda: aclient.rename("a", "b"))
    assert "rename" in str(caught.value) and "may or may not" in str(caught.value)
    tracker.cancel_faults()
    assert sync.get_file_data("b") == b"a"  # it did take effect
    sync.close()


def test_a_cancelled_task_leaves_the_client_usable(
    aclient: AsyncClient, client: Client, keys: Keys
) -> None:
    store(client, keys("a"), b"a")

    async def work() -> int:
        task = asyncio.ensure_future(aclient.iter_keys(keys()).__anext__())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        calls = [asyncio.ensure_future(aclient.file_info(keys("a"))) for _ in range(5)]
        await asyncio.sleep(0)
        calls[0].cancel()
        done = await asyncio.gather(*calls[1:])
        return sum(info.length for info in done)

    assert run(aclient, work) == 4


# Python 3.12+ warns that fork() in a process with threads (the dev MogileFS's) may deadlock.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_runs_its_own_event_loop(
    aclient: AsyncClient, client: Client, keys: Keys
) -> None:
    store(client, keys("a"), b"parent's")
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(aclient.file_info(keys("a"))).length == 8
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, never return into pytest
            try:
                info = asyncio.run(aclient.file_info(keys("a")))
                asyncio.run(aclient.rename(keys("a"), keys("child's")))
                os.write(write_end, b"%d" % info.length)
            finally:
                os._exit(0)
        os.close(write_end)
        said = os.read(read_end, 16)
        os.close(read_end)
        os.waitpid(pid, 0)
        assert said == b"8"
        # The parent's loop and its kept connection still work after the child's.
        found = loop.run_until_complete(aclient.list_keys(keys()))
        assert found == [keys("child's")]
    finally:
        loop.run_until_complete(aclient.aclose())
        loop.close()


def test_a_client_shared_by_event_loops_in_threads(
    aclient: AsyncClient, client: Client, keys: Keys
) -> None:
    store(client, keys("a"), b"shared")
    lengths: list[int] = []

    def in_a_thread() -> None:
        lengths.append(run(aclient, lambda: aclient.file_info(keys("a"))).length)

    threads = [threading.Thread(target=in_a_thread) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert lengths == [6] * 4


@pytest.mark.parametrize(
    "settings",
    [
        {"timeout": 0},
        {"connect_timeout": float("nan")},
        {"backoff": -1},
        {"http_timeout": True},
        {"node_progress_timeout": "5"},
        {"chunk_size": 0},
    ],
)
def test_bad_settings_are_refused_alike(settings: dict[str, Any]) -> None:
    errors = []
    for made in (Client, AsyncClient):
        with pytest.raises(ValueError) as raised:
            made("testdomain", ["127.0.0.1:7001"], **settings)
        errors.append(str(raised.value))
    assert errors[0] == errors[1]
    with pytest.raises(ValueError, match="domain"):
        AsyncClient("", ["127.0.0.1:7001"])


def failing_calls(keys: Keys) -> list[tuple[str, tuple[str, ...]]]:
    """Three calls whose errors go through an operation (thrown in, raised on)."""
    missing = keys("missing")
    return [("file_info", (missing,)), ("rename", (missing, keys("b"))), ("delete", (missing,))]


def fail_thrice_sync(client: Client, keys: Keys) -> None:
    for method, args in failing_calls(keys):
        with pytest.raises(UnknownKeyError):
            getattr(client, method)(*args)
    client.close()


def fail_thrice_async(client: AsyncClient, keys: Keys) -> None:
    """The errors are caught inside the task: a task's result holds its
    error, and asyncio's loop holds the task."""

    async def work() -> None:
        for method, args in failing_calls(keys):
            with pytest.raises(UnknownKeyError):
                await getattr(client, method)(*args)
        await client.aclose()

    asyncio.run(work())


@pytest.mark.parametrize(
    "made, fail_thrice",
    [(Client, fail_thrice_sync), (AsyncClient, fail_thrice_async)],
    ids=["sync", "async"],
)
def test_a_dropped_client_is_freed_at_once_after_errors(
    mogile_target: Target, keys: Keys, made: Any, fail_thrice: Callable[[Any, Keys], None]
) -> None:
    """Errors raised through an operation leave no reference cycle: a client
    dropped is freed without the garbage collector (and with it its
    storage-node probes, which end with it)."""
    client = made(mogile_target.domain, mogile_target.trackers)
    fail_thrice(client, keys)
    gc.disable()
    try:
        dropped = weakref.ref(client)
        del client
        assert dropped() is None
    finally:
        gc.enable()


@pytest.fixture(params=["sync", "async"])
def make_side(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Makes a SyncSide or an AsyncSide (the test runs once with each), closed after."""
    made: list[Any] = []

    def make(trackers: list[str], **settings: Any) -> Any:
        if request.param == "sync":
            made.append(SyncSide(Client("testdomain", trackers, **settings)))
        else:
            made.append(AsyncSide(AsyncClient("testdomain", trackers, **settings)))
        return made[-1]

    yield make
    for side in made:
        side.close()


@pytest.mark.parametrize("command", ["create_open", "create_close"])
@pytest.mark.parametrize("act", [False, True], ids=["before-acting", "after-acting"])
def test_a_store_whose_reply_is_lost_is_settled(
    dev_cluster: DevCluster, make_side: Callable[..., Any], command: str, act: bool
) -> None:
    do = make_side(dev_cluster.trackers)
    assert do("store_content", "k", b"previous") == 8
    dev_cluster.tracker_servers[0].tracker.drop_reply(command, act=act)
    assert do("store_content", "k", b"new content") == 11
    assert do("get_file_data", "k") == b"new content"


def test_a_store_whose_close_no_tracker_can_settle(
    dev_cluster: DevCluster, make_side: Callable[..., Any]
) -> None:
    do = make_side(dev_cluster.trackers, backoff=0)
    tracker = dev_cluster.tracker_servers[0].tracker
    tracker.drop_reply("create_close", act=True)
    tracker.drop_reply("file_info", act=True, count=100)
    error = do("store_content", "k", b"unknowable")
    assert isinstance(error, TrackerUnavailableError)
    assert "create_close" in str(error) and "'k'" in str(error) and "may or may not" in str(error)
    tracker.cancel_faults()
    assert do("get_file_data", "k") == b"unknowable"  # it did take effect


def test_a_staged_save_starts_over_under_another_staging_key(
    dev_cluster: DevCluster, make_side: Callable[..., Any]
) -> None:
    """create_close refused as held by an earlier attempt (no_temp_file): the
    save is not waited for, it starts over under ``<staging key>.1``."""
    do = make_side(dev_cluster.trackers)
    dev_cluster.tracker_servers[0].tracker.fail_reply("create_close", "no_temp_file")
    saved = do("store_new_file", ["name"], io.BytesIO(b"staged"), "thumb", staging_key="stage")
    assert saved == "name"
    assert do("get_file_data", "name") == b"staged"
    assert do("list_keys", "stage") == []  # neither staging key is left


def test_a_store_after_its_upload_was_lost_starts_over(
    dev_cluster: DevCluster, make_side: Callable[..., Any]
) -> None:
    """create_close says the node lost the upload (size_verify_error): the
    store starts over from create_open; a non-seekable source that was read
    cannot, and says so."""
    do = make_side(dev_cluster.trackers)
    tracker = dev_cluster.tracker_servers[0].tracker
    tracker.fail_reply("create_close", "size_verify_error")
    assert do("store_content", "k", b"again") == 5
    assert do("get_file_data", "k") == b"again"
    tracker.fail_reply("create_close", "size_verify_error")
    error = do("store_file", "k", NonSeekable(b"once only"))
    assert isinstance(error, UnrewindableSourceError) and error.key == "k"
    assert do("get_file_data", "k") == b"again"


def test_an_upload_fails_over_to_the_next_destination(
    dev_cluster: DevCluster, make_side: Callable[..., Any]
) -> None:
    do = make_side(dev_cluster.trackers)
    dev_cluster.nodes[0].stop()
    try:
        for index in range(4):  # create_open offers the stopped node first at random
            assert do("store_content", f"k{index}", b"%d" % index, "thumb") == 1
        assert do("stat", "k0").length == 1
    finally:
        dev_cluster.nodes[0].start()
    assert [do("get_file_data", f"k{index}") for index in range(4)] == [b"0", b"1", b"2", b"3"]


def test_a_read_falls_through_to_another_copy(
    dev_cluster: DevCluster, make_side: Callable[..., Any]
) -> None:
    do = make_side(dev_cluster.trackers)
    data = random.Random(19).randbytes(50_000)
    assert do("store_content", "k", data, "avatar") == len(data)
    wait_for(lambda: do("file_info", "k").devcount == 2, timeout=30)
    stopped = dev_cluster.nodes[0]
    paths = sorted(do("get_paths", "k"), key=lambda url: not url.startswith(stopped.url))
    assert paths[0].startswith(stopped.url)  # the copy tried first is down
    stopped.stop()
    try:
        assert do("read", "k", paths=paths, size=len(data)) == data
        assert do("stat", "k", paths=paths, size=len(data)).length == len(data)
    finally:
        stopped.start()

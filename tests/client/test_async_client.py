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
import os
import re
import threading
import weakref
from collections.abc import Callable
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
)
from storages_mogile.client.aioclient import AsyncClient
from storages_mogile.devserver import DevCluster
from tests.conftest import Target

from .conftest import Keys, after_file_info
from .fakes import closed_port
from .test_roundtrip import RAW_KEY

#: A scenario's step: a method name and its arguments, for either client.
Do = Callable[..., object]


class SyncSide:
    """Runs methods on a Client; an outcome is the answer or the error raised."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> object:
        try:
            answer = getattr(self.client, method)(*args, **kwargs)
            return list(answer) if method == "iter_keys" else answer
        except (MogileFSError, ValueError, TypeError) as exc:
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
            if method == "iter_keys":
                return [key async for key in self.client.iter_keys(*args, **kwargs)]
            return await getattr(self.client, method)(*args, **kwargs)
        except (MogileFSError, ValueError, TypeError) as exc:
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
    elif isinstance(outcome, Location):
        outcome = outcome._replace(paths=len(outcome.paths), fid=None)
    return re.sub(r"\d+\.fid", "N.fid", repr(outcome).replace(prefix, "<keys>/"))


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
    """A tracker on MariaDB takes ``Photo.JPG`` and ``photo.jpg`` for one key:
    the exact-key rules must answer alike over both clients."""
    store(setup, k("Photo.JPG"), b"photo")
    store(setup, k("other"), b"other")
    fid = setup.file_info(k("Photo.JPG")).fid
    return [
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
        do("rename", k("kept"), k(b"\xc3\xa9".decode("utf-8", "surrogateescape"))),
    ]


SCENARIOS = [file_info, paths, listing, rename, delete, update_class, copies, spellings, raw_bytes]


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
    assert any("Error" in str(outcome) for outcome in sync) or scenario is copies


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

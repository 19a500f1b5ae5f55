"""The asyncio tracker pool (storages_mogile.client.aio): the sync pool's rules, over asyncio.

Real sockets throughout: the MogileFS under test (dev or real), the dev
MogileFS's fault controls, and scripted tracker sockets (tests/client/fakes)
for replies that come late, never or garbled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from storages_mogile.client import Client, KeyExistsError, TrackerUnavailableError, UnknownKeyError
from storages_mogile.client import core as core_module
from storages_mogile.client.aio import AsyncTrackerPool
from storages_mogile.client.protocol import ProtocolError
from storages_mogile.devserver import DevCluster
from tests.conftest import Target
from tests.devserver.helpers import Line

from .conftest import Keys
from .fakes import Answer, SilentTracker, closed_port, late_first, replies, stray_line
from .test_hung_nodes import process_listening_on

T = TypeVar("T")


def run(pool: AsyncTrackerPool, work: Callable[[], Awaitable[T]]) -> T:
    """``await work()`` in a new event loop, closing the pool's connections after."""

    async def main() -> T:
        try:
            return await work()
        finally:
            await pool.aclose()

    return asyncio.run(main())


def fid(pool: AsyncTrackerPool, domain: str) -> Callable[[str], Awaitable[int | None]]:
    """An async lookup of the fid a key holds (None for none), through ``pool``."""

    async def lookup(key: str) -> int | None:
        try:
            return int((await pool.call("file_info", {"domain": domain, "key": key}))["fid"])
        except UnknownKeyError:
            return None

    return lookup


def test_calls_answer_as_the_sync_pool_does(mogile_target: Target, keys: Keys) -> None:
    sync = Client(mogile_target.domain, mogile_target.trackers)
    sync.store_content(keys("a"), b"async")
    pool = AsyncTrackerPool(mogile_target.trackers)
    args = {"domain": mogile_target.domain, "key": keys("a")}

    async def work() -> None:
        info = await pool.call("file_info", args)
        assert int(info["fid"]) == sync.file_info(keys("a")).fid
        assert int(info["length"]) == 5
        paths = await pool.call("get_paths", args)
        assert int(paths["paths"]) >= 1
        with pytest.raises(UnknownKeyError) as raised:
            await pool.call("file_info", {**args, "key": keys("missing")})
        assert raised.value.key == keys("missing")
        assert raised.value.domain == mogile_target.domain

    run(pool, work)
    sync.close()


def test_concurrent_calls_share_the_loops_connections(tracker_factory) -> None:
    """16 concurrent requests each hold a connection of their own; the next
    16 reuse them (max_idle=16) instead of opening more."""
    tracker = tracker_factory(lambda request, number: Answer(b"OK \r\n", delay=0.05))
    pool = AsyncTrackerPool([tracker.address])

    async def burst() -> None:
        await asyncio.gather(*(pool.call("noop", {}) for _ in range(16)))

    async def work() -> None:
        await burst()
        opened = tracker.connections
        await burst()
        assert tracker.connections == opened == 16

    run(pool, work)
    assert len(tracker.received) == 32


def test_each_event_loop_has_its_own_connections(tracker_factory) -> None:
    tracker = tracker_factory(lambda request, number: Answer(b"OK \r\n"))
    pool = AsyncTrackerPool([tracker.address])
    per_loop: list[int] = []

    def in_a_thread() -> None:
        run(pool, lambda: pool.call("noop", {}))

    run(pool, lambda: pool.call("noop", {}))
    for _ in range(2):
        thread = threading.Thread(target=in_a_thread)
        thread.start()
        thread.join()
        per_loop.append(tracker.connections)
    assert per_loop == [2, 3]
    deadline = time.monotonic() + 2
    while tracker.open_connections() and time.monotonic() < deadline:
        time.sleep(0.01)  # the fake tracker's threads see the ends
    assert tracker.open_connections() == 0  # aclose() closed each loop's


def test_refused_tracker_is_skipped_and_rests(tracker_factory, in_given_order) -> None:
    refused = closed_port()
    tracker = tracker_factory(lambda request, number: Answer(b"OK \r\n"))
    pool = AsyncTrackerPool([refused, tracker.address], backoff=30)

    async def work() -> None:
        await pool.call("noop", {})
        assert pool.roster.order(None) == [tracker.address, refused]  # resting: last
        await pool.call("noop", {})

    run(pool, work)
    assert tracker.commands() == ["noop", "noop"]


def test_failover_past_a_refusing_and_a_silent_tracker_to_the_mogilefs(
    mogile_target: Target, keys: Keys, in_given_order
) -> None:
    sync = Client(mogile_target.domain, mogile_target.trackers)
    sync.store_content(keys("a"), b"found")
    silent, refused = SilentTracker(), closed_port()
    broken = [refused, silent.address]
    pool = AsyncTrackerPool([*broken, *mogile_target.trackers], timeout=0.5, backoff=30)
    lookup = fid(pool, mogile_target.domain)

    async def work() -> None:
        assert await lookup(keys("a")) == sync.file_info(keys("a")).fid
        assert pool.roster.order(None)[-2:] == broken  # both rest now
        assert await lookup(keys("a")) == sync.file_info(keys("a")).fid

    try:
        run(pool, work)
    finally:
        silent.close()
        sync.close()


def test_a_hung_mogilefsd_is_failed_over_and_rests(
    mogile_target: Target, keys: Keys, in_given_order
) -> None:
    """A real tracker stopped with SIGSTOP (its ProcManager: connections are
    accepted by the kernel, nothing answers) costs one timeout, then rests;
    the other tracker answers. Only with a local real MogileFS (the lab)."""
    if len(mogile_target.trackers) < 2:
        pytest.skip("needs two trackers")
    hung, other = mogile_target.trackers[:2]
    pid = process_listening_on(f"http://{hung}", b"mogilefsd")
    sync = Client(mogile_target.domain, [other])
    sync.store_content(keys("a"), b"found")
    pool = AsyncTrackerPool([hung, other], timeout=1, backoff=30)
    lookup = fid(pool, mogile_target.domain)

    async def work() -> list[float]:
        took = []
        for _ in range(3):
            started = time.monotonic()
            assert await lookup(keys("a")) == sync.file_info(keys("a")).fid
            took.append(time.monotonic() - started)
        return took

    os.kill(pid, signal.SIGSTOP)
    try:
        took = run(pool, work)
    finally:
        os.kill(pid, signal.SIGCONT)
    sync.close()
    assert took[0] >= 1  # the hung tracker's timeout
    assert max(took[1:]) < 1  # resting: the other tracker first
    assert pool.roster.order(None) == [other, hung]


def test_silent_tracker_times_out_and_the_next_answers(tracker_factory, in_given_order) -> None:
    silent = SilentTracker()
    tracker = tracker_factory(replies("OK paths=0"))
    pool = AsyncTrackerPool([silent.address, tracker.address], timeout=0.3)
    try:
        reply = run(pool, lambda: pool.call("get_paths", {"domain": "d", "key": "k"}))
    finally:
        silent.close()
    assert reply == {"paths": "0"}


def test_no_tracker_answering_names_every_tracker_and_why() -> None:
    silent = SilentTracker()
    refused = closed_port()
    pool = AsyncTrackerPool([silent.address, refused], timeout=0.3)
    try:
        with pytest.raises(TrackerUnavailableError) as raised:
            run(pool, lambda: pool.call("noop", {}))
    finally:
        silent.close()
    reasons = dict(raised.value.attempts)
    assert reasons[silent.address] == "no reply within 0.3 s"
    assert reasons[refused].startswith("connect failed:")


def test_non_idempotent_command_without_settle_is_not_resent(tracker_factory) -> None:
    tracker = tracker_factory(lambda request, number: Answer(None, close=True))
    pool = AsyncTrackerPool([tracker.address])
    with pytest.raises(TrackerUnavailableError, match="may or may not have taken effect"):
        run(pool, lambda: pool.call("rename", {"domain": "d", "from_key": "a", "to_key": "b"}))
    assert tracker.commands() == ["rename"]


def test_late_reply_never_answers_the_next_command(tracker_factory) -> None:
    tracker = tracker_factory(late_first(0.6))
    pool = AsyncTrackerPool([tracker.address], timeout=0.3, backoff=0)
    args = {"domain": "d", "key": "k"}

    async def work() -> None:
        assert (await pool.call("get_paths", args))["path1"] == "http://fresh/2"
        await asyncio.sleep(0.5)  # the late reply arrives on the first connection
        assert (await pool.call("get_paths", args))["path1"] == "http://fresh/2"

    run(pool, work)
    assert tracker.connections == 2


def test_cancelled_call_never_leaves_its_reply_to_the_next(tracker_factory) -> None:
    """A request cancelled while its reply is owed (a client that went away
    under ASGI, a timeout around it) closes its connection."""
    tracker = tracker_factory(late_first(0.5))
    pool = AsyncTrackerPool([tracker.address])
    args = {"domain": "d", "key": "k"}

    async def work() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(pool.call("get_paths", args), 0.1)
        await asyncio.sleep(0.6)  # the late reply has arrived by now
        assert (await pool.call("get_paths", args))["path1"] == "http://fresh/2"

    run(pool, work)
    assert tracker.connections == 2


def test_extra_reply_line_retires_the_connection(tracker_factory) -> None:
    tracker = tracker_factory(stray_line)
    pool = AsyncTrackerPool([tracker.address])

    async def work() -> None:
        await pool.call("delete", {"domain": "d", "key": "k"})
        await asyncio.sleep(0.1)
        assert (await pool.call("get_paths", {"domain": "d", "key": "k"}))["path1"] == (
            "http://right/"
        )

    run(pool, work)
    assert tracker.connections == 2


def test_retried_delete_finding_no_key_has_succeeded(tracker_factory, in_given_order) -> None:
    hung = tracker_factory(lambda request, number: Answer(None, close=True))
    other = tracker_factory(replies("ERR unknown_key unknown_key"))
    pool = AsyncTrackerPool([hung.address, other.address])
    assert run(pool, lambda: pool.call("delete", {"domain": "d", "key": "k"})) == {}


def test_transient_errors_are_tried_again(dev_cluster: DevCluster) -> None:
    tracker = dev_cluster.tracker_servers[0].tracker
    pool = AsyncTrackerPool(dev_cluster.trackers)
    tracker.fail_reply("get_domains", "db", count=2)
    assert "testdomain" in run(pool, lambda: pool.call("get_domains", {})).values()
    assert tracker.pending_faults() == 0


@pytest.mark.parametrize("act", [False, True], ids=["before-acting", "after-acting"])
def test_rename_reply_lost_is_settled(dev_cluster: DevCluster, act: bool) -> None:
    """The tracker closes the connection instead of answering a rename; the
    settle function (async, through the same pool) finds out where the
    file is, and the rename is sent again only if it did not happen."""
    sync = Client("testdomain", dev_cluster.trackers)
    sync.store_content("a", b"moved")
    moved = sync.file_info("a").fid
    pool = AsyncTrackerPool(dev_cluster.trackers)
    lookup = fid(pool, "testdomain")
    asked: list[bool] = []

    async def renamed() -> bool:
        asked.append(done := await lookup("b") == moved)
        return done

    dev_cluster.tracker_servers[0].tracker.drop_reply("rename", act=act)
    args = {"domain": "testdomain", "from_key": "a", "to_key": "b"}
    assert run(pool, lambda: pool.call("rename", args, settle=renamed)) == {}
    assert asked[0] is act
    assert sync.get_file_data("b") == b"moved"
    with pytest.raises(UnknownKeyError):
        sync.file_info("a")
    sync.close()


def test_lost_reply_with_no_tracker_to_ask_is_an_unknown_outcome(
    dev_cluster: DevCluster,
) -> None:
    sync = Client("testdomain", dev_cluster.trackers)
    sync.store_content("a", b"x")
    pool = AsyncTrackerPool(dev_cluster.trackers, timeout=1)
    server = dev_cluster.tracker_servers[0]

    async def unanswerable() -> bool:
        server.stop()
        return await fid(pool, "testdomain")("b") is not None

    server.tracker.drop_reply("rename", act=True)
    args = {"domain": "testdomain", "from_key": "a", "to_key": "b"}
    try:
        with pytest.raises(TrackerUnavailableError, match="no tracker could be asked"):
            run(pool, lambda: pool.call("rename", args, settle=unanswerable))
    finally:
        server.start()
    assert sync.get_file_data("b") == b"x"  # it had taken effect
    sync.close()


def test_tracker_stopped_and_started_between_calls(dev_cluster: DevCluster) -> None:
    """Failover to a second tracker while the first is down, and back."""
    first, second = dev_cluster.tracker_servers[0], dev_cluster.add_tracker()
    pool = AsyncTrackerPool([first.address, second.address], backoff=0.2)

    async def work() -> None:
        for server in (first, second, first):
            server.stop()
            try:
                for _ in range(5):
                    assert "testdomain" in (await pool.call("get_domains", {})).values()
            finally:
                server.start()

    run(pool, work)


ROUNDS = 30


def test_renames_right_after_another_programs_rename_onto_a_taken_key(
    mogile_target: Target, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    """Each round another connection renames onto a taken key, which
    mogilefsd 2.73 answers twice; its stray reply costs the next request
    its connection (on the dev tracker always, on mogilefsd when one is
    queued): a lost reply. Async renames back and forth, settled by the
    fid, and reads all succeed meanwhile, and the file ends where they put it."""
    tracker = mogile_target.trackers[0]
    sync = Client(mogile_target.domain, [tracker])
    sync.store_content(keys("taken"), b"taken")
    sync.store_content(keys("from"), b"from")
    sync.store_content(keys("ping"), b"moving")
    moving = sync.file_info(keys("ping")).fid
    pool = AsyncTrackerPool([tracker], backoff=0)
    lookup = fid(pool, mogile_target.domain)

    def other_program() -> None:
        with Line(tracker) as other:
            try:
                reply = other.ask(
                    "rename",
                    domain=mogile_target.domain,
                    from_key=keys("from"),
                    to_key=keys("taken"),
                )
            except ProtocolError:  # the stray reply of an earlier round closed this line
                return
        assert reply.code == "key_exists"

    async def rename(source: str, target: str) -> None:
        async def moved() -> bool:
            if await lookup(source) == moving:
                return False
            return await lookup(target) == moving

        args = {"domain": mogile_target.domain, "from_key": source, "to_key": target}
        await pool.call("rename", args, settle=moved)

    async def work() -> None:
        names = [keys("ping"), keys("pong")]
        for index in range(ROUNDS):
            await asyncio.to_thread(other_program)
            await asyncio.gather(
                rename(names[index % 2], names[(index + 1) % 2]),
                *(lookup(keys("taken")) for _ in range(4)),
            )

    caplog.set_level(logging.INFO, logger=core_module.__name__)
    run(pool, work)
    settled = [
        r for r in caplog.records if "rename" in r.getMessage() and "no answer" in r.getMessage()
    ]
    if not mogile_target.real:  # the dev tracker kills the next request every time
        assert settled
    assert sync.file_info(keys("ping" if ROUNDS % 2 == 0 else "pong")).fid == moving
    assert sync.get_file_data(keys("taken")) == b"taken"
    with pytest.raises(KeyExistsError):
        sync.rename(keys("from"), keys("taken"))
    sync.close()


# Python 3.12+ warns that fork() in a process with threads (the dev MogileFS's) may deadlock.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_runs_its_own_loop_with_its_own_connections(tracker_factory) -> None:
    """The parent keeps an idle connection in its loop and forks; the child
    runs a loop of its own, opens its own connection, and the parent's
    goes on answering the parent."""
    tracker = tracker_factory(
        lambda request, number: Answer(f"OK paths=1&path1=http://conn/{number}\r\n".encode())
    )
    pool = AsyncTrackerPool([tracker.address])
    args = {"domain": "d", "key": "k"}
    loop = asyncio.new_event_loop()
    try:
        first = loop.run_until_complete(pool.call("get_paths", args))["path1"]
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, never return into pytest
            try:
                found = run(pool, lambda: pool.call("get_paths", args))["path1"]
                os.write(write_end, found.encode())
            finally:
                os._exit(0)
        os.close(write_end)
        child_said = os.read(read_end, 64).decode()
        os.close(read_end)
        os.waitpid(pid, 0)
        again = loop.run_until_complete(pool.call("get_paths", args))["path1"]
        loop.run_until_complete(pool.aclose())
    finally:
        loop.close()
    assert first == again == "http://conn/1"
    assert child_said == "http://conn/2"

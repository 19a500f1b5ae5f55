"""Requests whose reply is lost: every outcome is found out, none is guessed.

A tracker can carry a request out and close the connection before its reply
leaves: mogilefsd 2.73 does it to the request that follows a ``rename`` onto
a taken key (its stray second reply), and any tracker does it when it is
stopped mid-request. The dev tracker does both on demand
(``Tracker.drop_reply``); the tests that need no dev controls also run on a
real MogileFS.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from storages_mogile.client import (
    Admin,
    Client,
    CloseOutcomeUnknownError,
    KeyExistsError,
    MogileFSError,
    TrackerUnavailableError,
    UnknownKeyError,
)
from storages_mogile.devserver import DevCluster
from tests.conftest import Target
from tests.devserver.helpers import Line

from .conftest import Keys, after_file_info

ROUNDS = 50


def test_store_right_after_rename_onto_a_taken_key(client: Client, keys: Keys) -> None:
    client.store_content(keys("taken"), b"taken")
    failures = []
    for index in range(ROUNDS):
        client.store_content(keys(f"from-{index}"), b"from")
        with pytest.raises(KeyExistsError):
            client.rename(keys(f"from-{index}"), keys("taken"))
        try:
            client.store_content(keys(f"after-{index}"), b"after %d" % index)
        except MogileFSError as exc:
            failures.append(repr(exc))
    assert failures == []
    for index in range(ROUNDS):
        assert client.get_file_data(keys(f"after-{index}")) == b"after %d" % index
        assert client.get_file_data(keys(f"from-{index}")) == b"from"
    assert client.get_file_data(keys("taken")) == b"taken"


def test_requests_right_after_another_programs_rename_onto_a_taken_key(
    mogile_target: Target, client: Client, keys: Keys
) -> None:
    """The rename comes from another connection (a race the client cannot
    avoid) while 6 threads store and read: whichever request meets the
    stray reply still gets its outcome. On mogilefsd the stray reply kills
    a request only when one is queued for the worker; the load makes that
    likely."""
    tracker = mogile_target.trackers[0]  # one tracker: the stray reply meets the client there
    near = Client(mogile_target.domain, [tracker], backoff=0)
    near.store_content(keys("taken"), b"taken")
    near.store_content(keys("from"), b"from")
    stop = threading.Event()
    failures: list[str] = []

    def load(worker: int) -> None:
        index = 0
        while not stop.is_set():
            key, data = keys(f"load-{worker}-{index}"), b"load %d %d" % (worker, index)
            try:
                near.store_content(key, data)
                assert near.get_file_data(key) == data
            except (MogileFSError, AssertionError) as exc:  # counted, never stops the run
                failures.append(f"{key}: {exc!r}")
            index += 1

    threads = [threading.Thread(target=load, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    other = Line(tracker)
    try:
        for index in range(ROUNDS):
            reply = other.ask(
                "rename", domain=mogile_target.domain, from_key=keys("from"), to_key=keys("taken")
            )
            assert reply.code == "key_exists"
            try:
                near.store_content(keys(f"after-{index}"), b"after %d" % index)
            except MogileFSError as exc:
                failures.append(repr(exc))
            if not other.raw(b"noop\r\n").startswith(b"OK"):  # the stray reply met this one
                other.close()
                other = Line(tracker)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        other.close()
        near.close()
    assert failures == []
    for index in range(ROUNDS):
        assert client.get_file_data(keys(f"after-{index}")) == b"after %d" % index


@pytest.mark.parametrize("act", [False, True], ids=["before-acting", "after-acting"])
def test_create_open_reply_lost(dev_cluster: DevCluster, act: bool) -> None:
    client = Client("testdomain", dev_cluster.trackers)
    dev_cluster.tracker_servers[0].tracker.drop_reply("create_open", act=act)
    assert client.store_content("k", b"opened twice") == len(b"opened twice")
    assert client.get_file_data("k") == b"opened twice"


@pytest.mark.parametrize("act", [False, True], ids=["before-acting", "after-acting"])
def test_create_close_reply_lost(dev_cluster: DevCluster, act: bool) -> None:
    client = Client("testdomain", dev_cluster.trackers)
    client.store_content("k", b"previous")
    dev_cluster.tracker_servers[0].tracker.drop_reply("create_close", act=act)
    client.store_content("k", b"new content")
    assert client.get_file_data("k") == b"new content"


def test_create_close_reply_lost_and_the_close_failed(dev_cluster: DevCluster) -> None:
    """The lost close was refused (the node lost the upload), and the close
    sent again is refused too (``no_temp_file``). The client cannot tell
    that attempt failed from one still running, so it neither starts over
    (a late commit would race the new store) nor says nothing was stored:
    the outcome is reported open, and the key keeps its previous content."""
    # timeout: how long the refused resend waits for the lost attempt to finish
    client = Client("testdomain", dev_cluster.trackers, timeout=1)
    client.store_content("k", b"previous", "thumb")
    dev_cluster.tracker_servers[0].tracker.drop_reply("create_close", act=True)
    put = client.nodes.put

    def put_then_lose_the_nodes(*args, **kwargs):  # type: ignore[no-untyped-def]
        put(*args, **kwargs)
        for node in dev_cluster.nodes:  # the tracker cannot check the upload's size
            node.stop()

    client.nodes.put = put_then_lose_the_nodes  # type: ignore[method-assign]
    with pytest.raises(CloseOutcomeUnknownError, match="may still do so") as caught:
        client.store_content("k", b"never committed", "thumb")
    for node in dev_cluster.nodes:
        node.start()
    assert caught.value.code == "no_temp_file" and caught.value.key == "k"
    assert client.get_file_data("k") == b"previous"


def test_create_close_outcome_unknowable(dev_cluster: DevCluster) -> None:
    client = Client("testdomain", dev_cluster.trackers, backoff=0)
    tracker = dev_cluster.tracker_servers[0].tracker
    tracker.drop_reply("create_close", act=True)
    tracker.drop_reply("file_info", act=True, count=100)
    with pytest.raises(TrackerUnavailableError) as caught:
        client.store_content("k", b"unknowable")
    message = str(caught.value)
    assert "create_close" in message and "'k'" in message
    assert "may or may not" in message
    tracker.cancel_faults()
    assert client.get_file_data("k") == b"unknowable"  # it did take effect


@pytest.mark.parametrize("act", [False, True], ids=["before-acting", "after-acting"])
def test_rename_reply_lost(dev_cluster: DevCluster, act: bool) -> None:
    client = Client("testdomain", dev_cluster.trackers)
    client.store_content("a", b"moved")
    dev_cluster.tracker_servers[0].tracker.drop_reply("rename", act=act)
    client.rename("a", "b")
    assert client.get_file_data("b") == b"moved"
    with pytest.raises(UnknownKeyError):
        client.file_info("a")


def test_rename_reply_lost_while_the_target_was_taken(dev_cluster: DevCluster) -> None:
    """The target appears between the client's check and the rename: the
    tracker refuses, and the reply to the refusal is lost too."""
    # timeout: how long a refused resend waits for the lost attempt to finish
    client = Client("testdomain", dev_cluster.trackers, timeout=1)
    client.store_content("a", b"mine")
    tracker = dev_cluster.tracker_servers[0].tracker

    def race() -> None:  # the client's look at "a" comes first, then "b" is stored
        Client("testdomain", dev_cluster.trackers).store_content("b", b"theirs")
        tracker.drop_reply("rename", act=True)

    client.trackers.call = after_file_info(client.trackers, "a", race)  # type: ignore[method-assign]
    with pytest.raises(KeyExistsError):
        client.rename("a", "b")
    assert client.file_info("a").length == len(b"mine")
    assert client.get_file_data("b") == b"theirs"


@pytest.mark.parametrize("act", [False, True], ids=["before-acting", "after-acting"])
def test_admin_replies_lost(dev_cluster: DevCluster, act: bool) -> None:
    admin = Admin(dev_cluster.trackers, timeout=1)
    tracker = dev_cluster.tracker_servers[0].tracker

    def lost(command: str) -> None:
        tracker.drop_reply(command, act=act)

    lost("create_domain")
    admin.create_domain("d2")
    lost("create_class")
    admin.create_class("d2", "c", 1)
    assert admin.get_domains()["d2"] == {"c": 1, "default": 2}
    lost("delete_class")
    admin.delete_class("d2", "c")
    lost("delete_domain")
    admin.delete_domain("d2")
    assert "d2" not in admin.get_domains()
    lost("create_host")
    admin.create_host("node9", "127.0.0.9", 7500)
    lost("create_device")
    admin.create_device("node9", 9)
    assert [device["hostid"] for device in admin.get_devices(9)]
    lost("delete_host")
    with pytest.raises(MogileFSError, match="host_not_empty"):
        admin.delete_host("node9")  # refused, and the refusal is what the caller hears
    assert "node9" in {host["hostname"] for host in admin.get_hosts()}


def test_tracker_flapping_under_load(dev_cluster: DevCluster) -> None:
    """4 threads store, read, rename and delete while the two trackers take
    turns being stopped, one of them stopped and started every 0.5 s: no
    operation fails. (Turns, because a thread stays with the tracker it is
    connected to until that one fails.)"""
    trackers = [dev_cluster.tracker_servers[0], dev_cluster.add_tracker()]
    client = Client("testdomain", [server.address for server in trackers], backoff=0.2)
    stop = threading.Event()
    failures: list[str] = []
    done: Counter[str] = Counter()

    def flap() -> None:
        turn = 0
        while not stop.wait(0.5):
            trackers[turn % 2].start()
            turn += 1
            trackers[turn % 2].stop()
            done["flaps"] += 1
        for server in trackers:
            server.start()

    def work(worker: int) -> None:
        index = 0
        while not stop.is_set():
            key, data = f"flap/{worker}/{index}", b"worker %d round %d" % (worker, index)
            try:
                client.store_content(key, data)
                assert client.get_file_data(key) == data
                client.rename(key, key + "-renamed")
                assert client.get_file_data(key + "-renamed") == data
                client.delete(key + "-renamed")
                done["rounds"] += 1
            except (MogileFSError, AssertionError) as exc:  # counted, never stops the run
                failures.append(f"{key}: {exc!r}")
            index += 1

    threads = [threading.Thread(target=flap)]
    threads += [threading.Thread(target=work, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    # At least 12 flaps (about 6 s; stopping a tracker takes longer on a loaded machine).
    deadline = time.monotonic() + 60
    while done["flaps"] < 12 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    assert done["rounds"] > 20 and done["flaps"] >= 12
    assert client.list_keys(prefix="flap/") == []

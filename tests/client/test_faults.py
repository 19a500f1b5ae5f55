"""Faults on a running MogileFS: stopped trackers and storage nodes, a silent tracker.

Tests taking ``dev_cluster`` stop and start parts of a dev cluster of their
own and are skipped on a real MogileFS.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from storages_mogile.client import Client, NoPathsError, StorageNodeError, TrackerUnavailableError
from storages_mogile.devserver import DevCluster
from tests.conftest import Target

from .conftest import Keys
from .fakes import SilentTracker
from .test_roundtrip import wait_for


def test_one_of_two_trackers_stopped(dev_cluster: DevCluster) -> None:
    second = dev_cluster.add_tracker()
    first = dev_cluster.tracker_servers[0]
    client = Client("testdomain", dev_cluster.trackers, backoff=0.2)
    client.store_content("t/before", b"before")
    first.stop()
    for index in range(6):  # enough calls to meet the stopped tracker at random
        client.store_content(f"t/{index}", b"during %d" % index)
        assert client.get_file_data(f"t/{index}") == b"during %d" % index
        client.rename(f"t/{index}", f"t/renamed-{index}")
    assert client.list_keys(prefix="t/renamed-") == [f"t/renamed-{index}" for index in range(6)]
    second.stop()
    with pytest.raises(TrackerUnavailableError) as caught:
        client.file_info("t/before")
    assert first.address in str(caught.value) and second.address in str(caught.value)
    first.start()
    assert client.get_file_data("t/before") == b"before"


def test_restarted_tracker_is_reconnected_transparently(dev_cluster: DevCluster) -> None:
    tracker = dev_cluster.tracker_servers[0]
    client = Client("testdomain", dev_cluster.trackers)
    client.store_content("r/a", b"x")
    tracker.stop()
    tracker.start()
    # The old connection is dead: it is noticed before sending, so even a
    # non-idempotent command goes through on a new one.
    client.rename("r/a", "r/b")
    assert client.get_file_data("r/b") == b"x"


def test_silent_tracker_beside_a_working_one(mogile_target: Target, keys: Keys) -> None:
    silent = SilentTracker()
    try:
        client = Client(
            mogile_target.domain, [silent.address, *mogile_target.trackers], timeout=0.5
        )
        for _ in range(4):  # idempotent: retried on the working tracker when the silent one is hit
            with pytest.raises(FileNotFoundError):
                client.get_paths(keys("missing"))
    finally:
        silent.close()


def test_stopped_node_before_upload(
    dev_cluster: DevCluster, caplog: pytest.LogCaptureFixture
) -> None:
    dev_cluster.nodes[0].stop()
    client = Client("testdomain", dev_cluster.trackers)
    with caplog.at_level(logging.WARNING, logger="storages_mogile.client"):
        for index in range(16):
            client.store_content(f"n/{index}", b"payload %d" % index, "thumb")
    for index in range(16):
        assert client.get_file_data(f"n/{index}") == b"payload %d" % index
    stopped = dev_cluster.nodes[0].url
    # create_open hands out the stopped node's device too; uploads that met it moved on.
    assert any(stopped in record.getMessage() for record in caplog.records)


def test_failed_upload_keeps_the_previous_version(dev_cluster: DevCluster) -> None:
    client = Client("testdomain", dev_cluster.trackers)
    client.store_content("v/key", b"version 1")
    for node in dev_cluster.nodes:
        node.stop()
    with pytest.raises(StorageNodeError, match="failed at every destination"):
        client.store_content("v/key", b"version 2")
    for node in dev_cluster.nodes:
        node.start()
    assert client.get_file_data("v/key") == b"version 1"


def test_stopped_node_before_read(dev_cluster: DevCluster) -> None:
    client = Client("testdomain", dev_cluster.trackers)
    client.store_content("rd/key", b"two copies", "avatar")
    wait_for(lambda: client.file_info("rd/key").devcount == 2)
    paths = client.get_paths("rd/key", noverify=True)
    stopped = dev_cluster.nodes[0]
    dead = [path for path in paths if path.startswith(stopped.url)]
    alive = [path for path in paths if not path.startswith(stopped.url)]
    assert len(dead) == 1 and len(alive) == 1
    stopped.stop()
    with client.read_file("rd/key", paths=dead + alive) as stream:
        assert stream.read() == b"two copies"
        assert stream.url == alive[0]
    for _ in range(5):  # whatever order the tracker gives
        assert client.get_file_data("rd/key") == b"two copies"
    assert client.stat("rd/key", paths=dead + alive).length == len(b"two copies")


def test_tracker_timeout_is_bounded(mogile_target: Target) -> None:
    silent = SilentTracker()
    try:
        client = Client(mogile_target.domain, [silent.address], timeout=1.0)
        started = time.monotonic()
        with pytest.raises(TrackerUnavailableError, match="no reply within 1 s"):
            client.store_content("never", b"sent")
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert elapsed < 1.0 + 5  # a correctness bound (no hang), not a speed test


def test_a_dropped_client_stops_probing_a_node_that_is_down(dev_cluster: DevCluster) -> None:
    """The probe thread of a wary node ends when its client is closed or
    dropped: a node taken away for good is not asked for ever (nor is what
    later listens on its port)."""

    def probes() -> list[threading.Thread]:
        names = {f"storages-mogile probe {node.url}" for node in dev_cluster.nodes}
        return [thread for thread in threading.enumerate() if thread.name in names]

    for close in (True, False):
        client = Client("testdomain", dev_cluster.trackers)
        client.store_content("p/key", b"one copy")
        paths = client.get_paths("p/key")
        for node in dev_cluster.nodes:
            node.stop()
        with pytest.raises(NoPathsError):
            client.read_file("p/key", paths=paths)
        assert probes()
        if close:
            client.close()
        del client
        wait_for(lambda: not probes(), timeout=10)
        for node in dev_cluster.nodes:
            node.start()

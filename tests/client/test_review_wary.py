"""Wary storage nodes and the abandoned staging close, tried by an adversary:
each test states what the docs promise (these failed on cb2fb9c)."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
import uuid

import pytest

from storages_mogile.client import Admin, Client, NoPathsError
from storages_mogile.client.health import NodeHealth
from storages_mogile.devserver import DevCluster

from .test_transfers import NonSeekable


def _node_of(cluster: DevCluster, url: str):
    (node,) = (node for node in cluster.nodes if url.startswith(node.url + "/"))
    return node


def _stored_on_one_node(client: Client, key: str, data: bytes) -> str:
    client.store_content(key, data, "thumb")
    (url,) = client.get_paths(key, noverify=True)
    return url


def test_a_wary_node_is_probed_by_one_thread_until_it_answers() -> None:
    """Requests failing one by one (sent before the node became wary) start
    one probe thread, not one each; the node is wary until a probe answers."""
    answers = iter([False, False, True])
    asked: list[str] = []

    def probe(url: str) -> bool:
        asked.append(url)
        return next(answers)

    health = NodeHealth(probe=probe, backoff=1.0)
    node = "http://127.0.0.1:1"
    for _ in range(5):
        health.failed(node, f"{node}/dev1/1.fid")
    deadline = time.monotonic() + 10
    while health.wary(node) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not health.wary(node)
    assert asked == [f"{node}/dev1/1.fid"] * 3


def test_a_transient_create_close_error_does_not_start_a_staged_save_over(
    dev_cluster: DevCluster,
) -> None:
    """``ERR db`` to create_close ends that close (the trackers module sends it
    again once settled). store_new_file now takes it for a lost reply,
    raises CloseOutcomeUnknownError from settle and uploads the file again
    under a new staging key: a non-seekable source, which store_file stores
    fine after the same error, fails with UnrewindableSourceError."""
    client = Client("testdomain", dev_cluster.trackers)
    prefix = f"review-staged-db/{uuid.uuid4().hex}/"
    dev_cluster.tracker_servers[0].tracker.fail_reply("create_close", "db")
    key = client.store_new_file(
        [prefix + "name"], NonSeekable(b"streamed once"), "thumb", staging_key=prefix + "stage"
    )
    assert key == prefix + "name"
    assert client.get_file_data(key) == b"streamed once"


def test_a_transient_create_close_error_does_not_upload_a_staged_save_again(
    dev_cluster: DevCluster,
) -> None:
    """The seekable variant: the save succeeds, but uploads the file twice
    (and three ``ERR db`` in a row end in CloseOutcomeUnknownError, "may
    still do so", for a close that is over)."""
    client = Client("testdomain", dev_cluster.trackers)
    prefix = f"review-staged-db2/{uuid.uuid4().hex}/"
    put = client.nodes.put
    puts: list[str] = []

    def counted(url: str, *args: object, **kwargs: object) -> None:
        puts.append(url)
        put(url, *args, **kwargs)  # type: ignore[arg-type]

    client.nodes.put = counted  # type: ignore[method-assign]
    dev_cluster.tracker_servers[0].tracker.fail_reply("create_close", "db")
    key = client.store_new_file(
        [prefix + "name"], io.BytesIO(b"seekable"), "thumb", staging_key=prefix + "stage"
    )
    assert client.get_file_data(key) == b"seekable"
    assert len(puts) == 1


def test_the_last_destination_on_a_wary_node_is_waited_for_mid_upload(
    dev_cluster: DevCluster,
) -> None:
    """docs/operating.md: the last destination of an upload is waited for up to
    ``http_timeout``, also on a node that was wary a moment ago and answered
    its probe: a node that pauses 2 s mid-body does not fail the save."""
    Admin(dev_cluster.trackers).set_state("node2", 2, "down")  # create_open offers dev1 only
    client = Client("testdomain", dev_cluster.trackers, http_timeout=30.0)
    node = dev_cluster.nodes[0]
    client.nodes.rest(node.url + "/dev1/x")  # wary until it answers the probe
    deadline = time.monotonic() + 10
    while client.nodes.wary(node.url + "/dev1/x") and time.monotonic() < deadline:
        time.sleep(0.01)
    data = os.urandom(32 << 20)
    source = io.BytesIO(data)
    read = source.read
    calls = 0

    def read_then_stall(size: int = -1) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 4:  # a few MiB in: the node pauses 2 s
            node.hang()
            threading.Timer(2.0, node.resume).start()
        return read(size)

    source.read = read_then_stall  # type: ignore[method-assign]
    try:
        client.store_file("review/last-destination", source, "thumb")
    finally:
        time.sleep(2.1)
        node.resume()
    assert client.get_file_data("review/last-destination") == data


# Python 3.12+ warns that fork() in a process with threads may deadlock.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_node_health_is_usable_in_a_child_forked_while_a_thread_held_its_lock() -> None:
    """The client is documented fork-safe: a child forked while another thread
    holds NodeHealth's lock is not blocked by it, and starts with no wary
    node (the parent's probe threads do not run in it)."""
    health = NodeHealth(probe=lambda url: False, backoff=1.0)
    node = "http://127.0.0.1:1"
    health.failed(node, f"{node}/x.fid")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with health._lock:
            held.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        try:
            signal.alarm(3)  # blocked for ever otherwise
            wary = health.wary(node)
            health.failed(node, f"{node}/x.fid")
            os.write(write_end, b"wary" if wary else b"ok")
        finally:
            os._exit(0)
    os.close(write_end)
    release.set()
    holder.join()
    said = os.read(read_end, 16)
    os.close(read_end)
    os.waitpid(pid, 0)
    assert said == b"ok"
    assert health.wary(node)  # the parent's probe still fails


def test_a_node_slower_than_the_probe_but_within_the_progress_timeout_leaves_wary(
    dev_cluster: DevCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/operating.md: "Keep node_progress_timeout above the longest pause a
    busy node takes before its first byte." Once a node failed, every request
    to it is a 1 s probe or skipped: a busy node that takes 1.5 s before its
    first byte (well inside the 5 s progress timeout) fails every probe and
    never leaves wary, so every read whose only copy is there fails for as
    long as it stays that slow."""
    from storages_mogile.devserver import storagenode

    client = Client("testdomain", dev_cluster.trackers, node_progress_timeout=5.0)
    key = f"review-slow-node/{uuid.uuid4().hex}"
    url = _stored_on_one_node(client, key, b"only copy")
    serve = storagenode._NodeHandler.serve_file

    def slow_serve(self: storagenode._NodeHandler) -> None:
        time.sleep(1.5)  # a busy node: its first byte after 1.5 s
        serve(self)

    monkeypatch.setattr(storagenode._NodeHandler, "serve_file", slow_serve)
    with client.read_file(key, paths=[url]) as stream:  # not wary: the progress timeout
        assert stream.read() == b"only copy"
    client.nodes.rest(url)  # it failed once (a stall, a reset)
    deadline = time.monotonic() + 10
    while client.nodes.wary(url) and time.monotonic() < deadline:
        time.sleep(0.05)  # the probe's HEAD gets its answer after 1.5 s
    served = 0
    for _ in range(3):
        try:
            with client.read_file(key, paths=[url]) as stream:
                served += stream.read() == b"only copy"
        except NoPathsError:
            pass
    assert served == 3  # main: 0, every probe times out after 1 s

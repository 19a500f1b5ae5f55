"""Wary storage nodes and the abandoned staging close, tried by an adversary:
each test states what the docs promise (these failed on cb2fb9c)."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import threading
import time
import uuid

import pytest

from storages_mogile.client import Admin, Client, NoPathsError
from storages_mogile.client.health import Admission, NodeHealth
from storages_mogile.devserver import DevCluster

from .test_transfers import NonSeekable


def _node_of(cluster: DevCluster, url: str):
    (node,) = (node for node in cluster.nodes if url.startswith(node.url + "/"))
    return node


def _stored_on_one_node(client: Client, key: str, data: bytes) -> str:
    client.store_content(key, data, "thumb")
    (url,) = client.get_paths(key, noverify=True)
    return url


def test_a_body_read_after_a_probe_gets_the_progress_timeout(dev_cluster: DevCluster) -> None:
    """docs/operating.md: a probe waits at most 1 s "for its first byte"; reads
    give a node up after ``node_progress_timeout`` of silence. A GET that was
    the probe keeps the probe's 1 s read timeout for its whole body: a node
    that answered the probe and then pauses 2 s mid-stream (well inside the
    5 s progress timeout) fails the read of its last copy."""
    client = Client("testdomain", dev_cluster.trackers, node_progress_timeout=5.0)
    key = f"review-probe-body/{uuid.uuid4().hex}"
    data = os.urandom(32 << 20)  # more than the sockets' buffers hold
    url = _stored_on_one_node(client, key, data)
    node = _node_of(dev_cluster, url)
    client.nodes.rest(url)  # the node failed a moment ago: wary
    digest = hashlib.md5()
    with client.read_file(key, paths=[url], size=len(data)) as stream:  # the probe
        digest.update(stream.read(client.chunk_size))
        node.hang()
        resumer = threading.Timer(2.0, node.resume)
        resumer.start()
        try:
            while chunk := stream.read(client.chunk_size):
                digest.update(chunk)
        finally:
            resumer.join()
            node.resume()
    assert digest.hexdigest() == hashlib.md5(data).hexdigest()


def test_a_failure_of_a_request_sent_before_the_node_became_wary_is_not_the_probes() -> None:
    """A request sent before the node became wary, failing while a probe is
    under way, is not the probe's failure: the requests waiting for the
    probe go ahead when the probe answers, and no second probe is let out
    while the first runs ("one request at a time")."""
    health = NodeHealth(backoff=1.0, probe_time=5.0)
    node = "http://127.0.0.1:1"
    assert health.admit(node, last=True) is Admission.GO  # request A, sent before
    health.failed(node)  # request B failed: wary
    probing, answer = threading.Event(), threading.Event()

    def probe() -> None:  # request C, in a thread of its own as requests are
        assert health.admit(node, last=True) is Admission.GO
        probing.set()
        answer.wait()
        health.answered(node)

    prober = threading.Thread(target=probe)
    prober.start()
    probing.wait()
    waited: list[Admission] = []
    waiter = threading.Thread(target=lambda: waited.append(health.admit(node, last=True)))
    waiter.start()
    time.sleep(0.1)
    health.failed(node)  # A fails now: not the probe
    second = health.admit(node, last=False)  # the probe still runs
    answer.set()  # C, the probe, answers
    prober.join()
    waiter.join()
    assert second is Admission.SKIP
    assert waited == [Admission.GO]


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
    ``http_timeout``; a wary node's probe waits 1 s "for its first byte". An
    upload that probes keeps 1 s for every socket operation of its body:
    a node that pauses 2 s mid-body fails the save."""
    Admin(dev_cluster.trackers).set_state("node2", 2, "down")  # create_open offers dev1 only
    client = Client("testdomain", dev_cluster.trackers, http_timeout=30.0)
    node = dev_cluster.nodes[0]
    client.nodes.rest(node.url + "/dev1/x")  # wary
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
    """The client is documented fork-safe, and DamagedCopies gives a forked
    child a lock of its own for this reason. NodeHealth keeps the parent's
    lock: a fork while another thread is inside failed()/admit()/answered()
    (here: holds the lock) leaves the child's first request to a wary node
    blocked for ever."""
    health = NodeHealth(backoff=1.0, probe_time=5.0)
    node = "http://127.0.0.1:1"
    health.failed(node)
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
            health.admit(node, last=False)
            health.answered(node)
            os.write(write_end, b"ok")
        finally:
            os._exit(0)
    os.close(write_end)
    release.set()
    holder.join()
    said = os.read(read_end, 16)
    os.close(read_end)
    os.waitpid(pid, 0)
    assert said == b"ok"


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
    served = 0
    for _ in range(3):
        try:
            with client.read_file(key, paths=[url]) as stream:
                served += stream.read() == b"only copy"
        except NoPathsError:
            pass
    assert served == 3  # main: 0, every probe times out after 1 s

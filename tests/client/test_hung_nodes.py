"""A storage node that hangs (stopped, not dead) costs a request the progress timeout.

A hung node accepts connections (the kernel's backlog does that for a
stopped process) and never answers. On the dev MogileFS a node is hung with
``StorageNode.hang()``; on a real MogileFS on this machine (the lab) the
``mogstored`` serving the node is stopped with SIGSTOP. Every test resumes
the node before it ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from storages_mogile.client import Admin, Client, CloseOutcomeUnknownError, NoPathsError
from storages_mogile.client.health import PROBE_PAUSE
from storages_mogile.devserver import DevCluster
from tests.conftest import TEST_DOMAIN, Target, real_mogilefs

from .test_roundtrip import wait_for

PROGRESS = 0.5  # the node_progress_timeout under test, in seconds
PATIENCE = 30.0  # http_timeout: what a hung node cost before
BOUND = 20.0  # a correctness bound (well under the 30 s http_timeout), not a speed test


@dataclass
class Hangable:
    """A MogileFS whose storage nodes a test can hang: ``hang(url)`` holds the
    node serving ``url`` while the context is open."""

    target: Target
    hang: Callable[[str], AbstractContextManager[None]]

    def client(self, **options: float) -> Client:
        options = {"node_progress_timeout": PROGRESS, "http_timeout": PATIENCE, **options}
        return Client(self.target.domain, self.target.trackers, **options)


@pytest.fixture
def hangable(request: pytest.FixtureRequest) -> Iterator[Hangable]:
    """A dev cluster of the test's own, or the real MogileFS named by the environment."""
    real = real_mogilefs()
    if real is not None:
        yield Hangable(real, stopped_mogstored)
        return
    cluster: DevCluster = request.getfixturevalue("fault_cluster")

    @contextlib.contextmanager
    def hang(url: str) -> Iterator[None]:
        (node,) = (node for node in cluster.nodes if url.startswith(node.url + "/"))
        node.hang()
        try:
            yield
        finally:
            node.resume()

    yield Hangable(Target(list(cluster.trackers), TEST_DOMAIN, real=False), hang)


@contextlib.contextmanager
def stopped_mogstored(url: str) -> Iterator[None]:
    """SIGSTOP the local mogstored listening on ``url``'s port; SIGCONT after."""
    pid = process_listening_on(url, b"mogstored")
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def process_listening_on(url: str, program: bytes) -> int:
    """The pid of the ``program`` (``mogstored``, or ``mogilefsd`` for a tracker's
    ``http://host:port``) holding the listening socket of ``url``; skips if none."""
    parts = urlsplit(url)
    host = bytes(reversed([int(octet) for octet in (parts.hostname or "").split(".")])).hex()
    local = f"{host.upper()}:{parts.port:04X}"
    inodes = {
        fields[9]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if (fields := line.split())[1] == local and fields[3] == "0A"  # LISTEN
    }
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (proc / "cmdline").read_bytes().split(b"\0")[0].strip() != program:
                continue
            sockets = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
            if {f"socket:[{inode}]" for inode in inodes} & sockets:
                return int(proc.name)
    pytest.skip(
        f"no local {program.decode()} process listens for {url} (the MogileFS is elsewhere)"
    )


def two_copies(client: Client, key: str, data: bytes) -> list[str]:
    """Store ``data`` in class avatar and wait for its two copies; their URLs."""
    client.store_content(key, data, "avatar")
    wait_for(lambda: len(client.get_paths(key, noverify=True)) == 2, timeout=30)
    return client.get_paths(key, noverify=True)


def met(caplog: pytest.LogCaptureFixture, url: str) -> int:
    """How many of the client's warnings name the node of ``url``."""
    node = "{0.scheme}://{0.netloc}/".format(urlsplit(url))
    return sum(
        record.name.startswith("storages_mogile.client") and node in record.getMessage()
        for record in caplog.records
    )


def test_an_upload_moves_on_from_a_hung_destination(
    hangable: Hangable, caplog: pytest.LogCaptureFixture
) -> None:
    # backoff 0: every upload may meet the hung node (none remembers it), so one does.
    client = hangable.client(backoff=0)
    prefix = f"hung-upload/{uuid.uuid4().hex}/"
    paths = two_copies(client, prefix + "probe", b"probe")
    hung_url = paths[0]
    stored = []
    with (
        caplog.at_level(logging.WARNING, logger="storages_mogile.client"),
        hangable.hang(hung_url),
    ):
        for index in range(40):
            started = time.monotonic()
            client.store_content(f"{prefix}{index}", b"stored %d" % index, "thumb")
            assert time.monotonic() - started < BOUND
            stored.append(index)
            if met(caplog, hung_url):
                break
    assert met(caplog, hung_url) == 1  # create_open offered the hung node first once
    for index in stored:
        assert client.get_file_data(f"{prefix}{index}") == b"stored %d" % index
        client.delete(f"{prefix}{index}")
    client.delete(prefix + "probe")


def test_a_read_moves_on_from_a_hung_copy(hangable: Hangable) -> None:
    client = hangable.client()
    key = f"hung-read/{uuid.uuid4().hex}"
    data = os.urandom(64 << 10)
    hung_url, alive_url = two_copies(client, key, data)
    with hangable.hang(hung_url):
        started = time.monotonic()
        with client.read_file(key, paths=[hung_url, alive_url], size=len(data)) as stream:
            assert stream.read() == data
            assert stream.url == alive_url
        assert time.monotonic() - started < BOUND
        stat = client.stat(key, paths=[hung_url, alive_url], size=len(data))
        assert (stat.url, stat.length) == (alive_url, len(data))
    client.delete(key)


def test_a_read_resumes_from_the_next_copy_when_its_node_hangs_mid_stream(
    hangable: Hangable,
) -> None:
    client = hangable.client()
    key = f"hung-stream/{uuid.uuid4().hex}"
    data = os.urandom(32 << 20)  # more than the sockets' buffers hold
    first_url, other_url = two_copies(client, key, data)
    digest = hashlib.md5()
    with client.read_file(key, paths=[first_url, other_url], size=len(data)) as stream:
        digest.update(stream.read(client.chunk_size))
        assert stream.url == first_url
        with hangable.hang(first_url):
            started = time.monotonic()
            while chunk := stream.read(client.chunk_size):
                digest.update(chunk)
            assert time.monotonic() - started < BOUND
            assert stream.url == other_url
    assert digest.hexdigest() == hashlib.md5(data).hexdigest()
    client.delete(key)


def test_a_hung_node_is_tried_last_by_the_requests_that_follow(
    hangable: Hangable, caplog: pytest.LogCaptureFixture
) -> None:
    """Once a request has given the node up, others put it last for ``backoff``
    seconds: the fault costs one progress timeout, not one per request."""
    client = hangable.client(backoff=60)
    prefix = f"hung-rest/{uuid.uuid4().hex}/"
    data = b"two copies"
    hung_url, alive_url = two_copies(client, prefix + "read", data)
    with (
        caplog.at_level(logging.WARNING, logger="storages_mogile.client"),
        hangable.hang(hung_url),
    ):
        with client.read_file(prefix + "read", paths=[hung_url, alive_url]) as stream:
            assert stream.read() == data
        for index in range(8):
            client.store_content(f"{prefix}{index}", b"%d" % index, "thumb")
            with client.read_file(prefix + "read", paths=[hung_url, alive_url]) as stream:
                assert stream.read() == data
    assert met(caplog, hung_url) == 1
    for index in range(8):
        assert client.get_file_data(f"{prefix}{index}") == b"%d" % index
        client.delete(f"{prefix}{index}")
    client.delete(prefix + "read")


def test_the_last_destination_left_is_waited_for(dev_cluster: DevCluster) -> None:
    """With nowhere else to go, a silent node gets ``http_timeout``, not the
    progress timeout: a slow node is waited for rather than failed."""
    Admin(dev_cluster.trackers).set_state("node2", 2, "down")  # create_open offers dev1 only
    client = Client(
        "testdomain", dev_cluster.trackers, node_progress_timeout=PROGRESS, http_timeout=PATIENCE
    )
    node = dev_cluster.nodes[0]

    def resume_later() -> None:
        time.sleep(PROGRESS * 4)
        node.resume()

    node.hang()
    waker = threading.Thread(target=resume_later)
    waker.start()
    try:
        client.store_content("slow/key", b"waited for", "thumb")
    finally:
        waker.join()
        node.resume()
    assert client.get_file_data("slow/key") == b"waited for"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        (name, value)
        for name in ("connect_timeout", "timeout", "http_timeout", "node_progress_timeout")
        for value in (0, -1, "5", None, True, float("nan"), float("inf"))
    ]
    + [("backoff", value) for value in (-1, "5", None, float("inf"))]
    + [("chunk_size", value) for value in (0, 1.5, "1024", True)],
)
def test_client_options_are_checked(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"^{option} must be"):
        Client("d", ["127.0.0.1:1"], **{option: value})  # type: ignore[arg-type]


def test_backoff_may_be_zero() -> None:
    assert Client("d", ["127.0.0.1:1"], backoff=0).nodes.backoff == 0


def hang_after_the_first_put(
    hangable: Hangable, client: Client
) -> tuple[contextlib.ExitStack, list[str]]:
    """Make ``client``'s first PUT hang its node once it is done (until the
    returned stack closes); the URLs of its PUTs."""
    put = client.nodes.put
    held = contextlib.ExitStack()
    put_urls: list[str] = []

    def put_then_hang(url: str, *args: object, **kwargs: object) -> None:
        put(url, *args, **kwargs)  # type: ignore[arg-type]
        put_urls.append(url)
        if len(put_urls) == 1:
            held.enter_context(hangable.hang(url))

    client.nodes.put = put_then_hang  # type: ignore[method-assign]
    return held, put_urls


def test_a_destination_hung_before_create_close_leaves_the_outcome_open(
    hangable: Hangable,
) -> None:
    """mogilefsd's create_close cannot check the upload on a node that stopped
    after the PUT. In the lab it did not answer within the client's 10 s
    ``timeout``: the reply is lost, and the close sent again is refused
    (``no_temp_file``: the first attempt holds the upload, still waiting for
    the node). Starting over would race that attempt, which commits once
    the node resumes (a soak lost an acknowledged upload so): the store
    reports the outcome open, and the first attempt's commit lands later.
    (On the dev cluster test_transient_faults stops the node instead:
    ``size_verify_error ... (cantreach)``, and the store starts over.)"""
    if not hangable.target.real:
        pytest.skip("real MogileFS only: the dev version stops the node (test_transient_faults)")
    client = hangable.client()
    key = f"hung-close/{uuid.uuid4().hex}"
    held, put_urls = hang_after_the_first_put(hangable, client)
    with held, pytest.raises(CloseOutcomeUnknownError, match="may still do so"):
        client.store_content(key, b"stored once", "thumb")
    assert len(put_urls) == 1  # not started over
    wait_for(lambda: key in client.list_keys(key), timeout=60)  # committed once the node is back
    assert client.get_file_data(key) == b"stored once"
    client.delete(key)


def test_a_staged_store_hung_before_create_close_starts_over_under_another_staging_key(
    hangable: Hangable,
) -> None:
    """A save (``store_new_file``) whose create_close waits on a node that hung
    after the PUT does not wait for that attempt: it stores the file again
    under a new staging key and renames that onto the name. The first
    attempt's late commit lands on the abandoned staging key."""
    if not hangable.target.real:
        pytest.skip("real MogileFS only: the dev version stops the node (test_transient_faults)")
    client = hangable.client(timeout=3)
    prefix = f"hung-staged/{uuid.uuid4().hex}/"
    held, put_urls = hang_after_the_first_put(hangable, client)
    with held:
        key = client.store_new_file(
            [prefix + "name"], io.BytesIO(b"saved once"), "thumb", staging_key=prefix + "stage"
        )
        assert key == prefix + "name"
        assert client.get_file_data(key) == b"saved once"
    assert len(put_urls) == 2  # started over
    wait_for(lambda: prefix + "stage" in client.list_keys(prefix), timeout=60)  # the late commit
    assert sorted(client.list_keys(prefix)) == [prefix + "name", prefix + "stage"]
    assert client.get_file_data(prefix + "name") == b"saved once"
    for left in client.list_keys(prefix):
        client.delete(left)


def test_a_resting_node_holding_the_last_copy_left_gets_the_progress_timeout(
    hangable: Hangable,
) -> None:
    """Once a node failed, a read whose only copy is on it gives up after the
    progress timeout, not ``http_timeout``: a hung node holds requests for
    seconds, not half a minute each."""
    client = hangable.client()
    key = f"hung-last/{uuid.uuid4().hex}"
    hung_url, alive_url = two_copies(client, key, b"two copies")
    with hangable.hang(hung_url):
        with client.read_file(key, paths=[hung_url, alive_url]) as stream:
            assert stream.read() == b"two copies"  # the hung node failed once
        started = time.monotonic()
        with pytest.raises(NoPathsError):
            client.read_file(key, paths=[hung_url])
        assert time.monotonic() - started < BOUND < PATIENCE
        with pytest.raises(NoPathsError):
            client.stat(key, paths=[hung_url])
        assert time.monotonic() - started < BOUND < PATIENCE
    client.delete(key)


def test_a_hung_node_is_met_by_one_request_until_it_answers_a_probe(
    hangable: Hangable, caplog: pytest.LogCaptureFixture
) -> None:
    """Once a read has given a hung node up, the node is wary: threads reading
    all along go to the other copy, none meets the node again, and it is
    used again once it answers the probe."""
    client = hangable.client()
    key = f"hung-probe/{uuid.uuid4().hex}"
    hung_url, alive_url = two_copies(client, key, b"two copies")
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            with client.read_file(key, paths=[hung_url, alive_url]) as stream:
                assert stream.read() == b"two copies"

    with (
        caplog.at_level(logging.WARNING, logger="storages_mogile.client"),
        hangable.hang(hung_url),
    ):
        with client.read_file(key, paths=[hung_url, alive_url]) as stream:
            assert stream.read() == b"two copies"  # the node fails once: wary
        readers = [threading.Thread(target=read) for _ in range(8)]
        for reader in readers:
            reader.start()
        time.sleep(PROGRESS * 4)
        stop.set()
        for reader in readers:
            reader.join()
        assert client.nodes.wary(hung_url)
    failures = [r for r in caplog.records if r.name == "storages_mogile.client.files"]
    assert len(failures) == 1 and hung_url in failures[0].getMessage()
    wait_for(lambda: not client.nodes.wary(hung_url), timeout=BOUND)
    with client.read_file(key, paths=[hung_url]) as stream:
        assert stream.read() == b"two copies"
    client.delete(key)


def test_no_request_goes_to_a_hanging_node(hangable: Hangable) -> None:
    """Requests whose only copy is on a node that hangs (it failed, and its
    probe waits) give up at once instead of each holding a thread for the
    progress timeout."""
    client = hangable.client(node_progress_timeout=2.0)
    key = f"hung-one/{uuid.uuid4().hex}"
    hung_url, alive_url = two_copies(client, key, b"two copies")
    failures: list[str] = []

    def read_the_hung_copy() -> None:
        try:
            client.read_file(key, paths=[hung_url])
        except NoPathsError as exc:
            failures.append(str(exc))

    with hangable.hang(hung_url):
        with client.read_file(key, paths=[hung_url, alive_url]) as stream:
            assert stream.read() == b"two copies"  # the hung node failed once
        time.sleep(PROBE_PAUSE * 2)  # its probe has waited a while: it hangs
        started = time.monotonic()
        readers = [threading.Thread(target=read_the_hung_copy) for _ in range(8)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
        assert time.monotonic() - started < 2.0  # none waited the progress timeout
        # (each waited ANSWER_WAIT for the node to answer its probe)
    assert len(failures) == 8
    assert all("has not answered a probe since" in failure for failure in failures)
    client.delete(key)


def test_a_node_that_comes_back_is_used_again_within_moments(hangable: Hangable) -> None:
    """The probe thread finds a resumed node at once: reads of its only copy
    are served again, not refused for a rest."""
    client = hangable.client(backoff=60)
    key = f"hung-back/{uuid.uuid4().hex}"
    hung_url, alive_url = two_copies(client, key, b"two copies")
    with hangable.hang(hung_url):
        with client.read_file(key, paths=[hung_url, alive_url]) as stream:
            assert stream.read() == b"two copies"  # the hung node failed once
        assert client.nodes.wary(hung_url)
    started = time.monotonic()
    wait_for(lambda: not client.nodes.wary(hung_url), timeout=BOUND)
    assert time.monotonic() - started < PROGRESS * 4  # not the 60 s of backoff
    with client.read_file(key, paths=[hung_url]) as stream:
        assert stream.read() == b"two copies"
    client.delete(key)


def test_a_read_of_a_node_resumed_a_moment_ago_is_served(hangable: Hangable) -> None:
    """A read whose only copy is on a hanging node waits a moment for the node
    to answer its probe: one resumed just then serves it (no 503 for a node
    that is back)."""
    client = hangable.client(node_progress_timeout=2.0)
    key = f"hung-resumed/{uuid.uuid4().hex}"
    hung_url, alive_url = two_copies(client, key, b"two copies")
    with contextlib.ExitStack() as hung:
        hung.enter_context(hangable.hang(hung_url))
        with client.read_file(key, paths=[hung_url, alive_url]) as stream:
            assert stream.read() == b"two copies"  # the hung node failed once
        time.sleep(PROBE_PAUSE * 2)  # its probe has waited a while: it hangs
        threading.Timer(0.05, hung.close).start()  # resumed while the read waits
        with client.read_file(key, paths=[hung_url]) as stream:
            assert stream.read() == b"two copies"
    client.delete(key)

"""Stream mode when storage nodes fail: the next path serves, also mid-stream."""

from __future__ import annotations

import logging
import os
import socketserver
import time
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from storages_mogile.client.protocol import encode_ok
from storages_mogile.devserver import DevCluster
from storages_mogile.pathcache import PathCache
from tests.client.fakes import serve_handler
from tests.serving.conftest import ALIAS, mogile_storages, wait_for_paths

pytestmark = pytest.mark.usefixtures("serving_settings")


@pytest.fixture
def fault_storage(settings, fault_cluster: DevCluster):
    """The served storage on a cluster of this test's own, class avatar (2 copies)."""
    settings.STORAGES = mogile_storages(fault_cluster.trackers, mogile_class="avatar")
    return storages[ALIAS]


def node_of(cluster: DevCluster, path: str):
    """The storage node a path points into."""
    return next(node for node in cluster.nodes if path.startswith(node.url + "/"))


def test_a_stopped_first_node_falls_through_to_the_next_path(
    client, fault_storage, fault_cluster, caplog
):
    data = os.urandom(256 * 1024)
    name = fault_storage.save("serving/failover.bin", ContentFile(data))
    paths = wait_for_paths(fault_storage, name, 2)
    assert client.get(f"/mogilefs/{name}").status_code == 200  # caches the paths
    first = node_of(fault_cluster, fault_storage.get_paths(name)[0])
    first.stop()
    with caplog.at_level(logging.WARNING, logger="storages_mogile.client"):
        response = client.get(f"/mogilefs/{name}")
        assert b"".join(response.streaming_content) == data
    assert any(first.url in record.getMessage() for record in caplog.records)
    assert len(paths) == 2


def test_a_node_failing_mid_stream_is_resumed_from_the_next_path(
    client, fault_storage, fault_cluster, caplog
):
    data = os.urandom(32 * 1024 * 1024)
    name = fault_storage.save("serving/midstream.bin", ContentFile(data))
    wait_for_paths(fault_storage, name, 2)
    response = client.get(f"/mogilefs/{name}")
    chunks = iter(response.streaming_content)
    received = [next(chunks)]  # the first node is sending now
    first = node_of(fault_cluster, fault_storage.get_paths(name)[0])
    with caplog.at_level(logging.WARNING, logger="storages_mogile.client"):
        first.stop()
        received.extend(chunks)
    assert b"".join(received) == data
    assert response["Content-Length"] == str(len(data))
    assert any(first.url in record.getMessage() for record in caplog.records)


def test_no_node_answering_is_a_503(client, fault_storage, fault_cluster):
    name = fault_storage.save("serving/gone.bin", ContentFile(b"x"))
    wait_for_paths(fault_storage, name, 2)
    for node in fault_cluster.nodes:
        node.stop()
    response = client.get(f"/mogilefs/{name}")
    assert response.status_code == 503
    for node in fault_cluster.nodes:
        assert node.url.encode() not in response.content


FILE_INFO = {"fid": "7", "class": "default", "length": "5", "devcount": "0"}


class NoCopyTracker(socketserver.StreamRequestHandler):
    """A tracker holding one file, ``serving/lost.bin``, that has no copy:
    ``get_paths`` answers ``paths=0``. It compares keys byte for byte.

    The dev tracker always offers some copy, as mogilefsd does while a file
    has any; a real tracker answers ``paths=0`` once a file has none left.
    """

    def handle(self) -> None:
        while line := self.rfile.readline():
            command, _, query = line.strip().partition(b" ")
            key = parse_qs(query.decode()).get("key", [None])[0]
            if command == b"file_info" and key != "serving/lost.bin":
                self.wfile.write(b"ERR unknown_key unknown_key\r\n")
                continue
            replies = {b"get_paths": {"paths": "0"}, b"file_info": FILE_INFO}
            reply = replies.get(command, {})
            self.wfile.write(encode_ok(reply))


@pytest.fixture
def no_copy_tracker() -> Iterator[str]:
    with serve_handler(NoCopyTracker) as address:
        yield address


@pytest.mark.parametrize("prefix", ["mogilefs", "perlbal", "nginx"])
def test_a_file_without_any_copy_is_a_503(client, settings, no_copy_tracker, prefix):
    settings.STORAGES = mogile_storages([no_copy_tracker])
    assert storages[ALIAS].get_paths("serving/lost.bin") == []
    response = client.get(f"/{prefix}/serving/lost.bin")
    assert response.status_code == 503


def one_copy_then_two(storage, cluster: DevCluster, client, data: bytes) -> str:
    """Save with the second node stopped, serve (caching the one path), then let
    the second copy be made; the name."""
    cluster.nodes[1].stop()
    name = storage.save("serving/late-copy.bin", ContentFile(data))
    assert client.get(f"/mogilefs/{name}").status_code == 200
    assert len(storage.get_key_location(storage.key_for(name)).paths) == 1
    cluster.nodes[1].start()
    key = storage.key_for(name)
    deadline = time.monotonic() + 30
    while storage.client.file_info(key).devcount < 2:
        assert time.monotonic() < deadline, "not replicated"
        time.sleep(0.05)
    return name


def test_when_every_cached_path_fails_the_tracker_is_asked_again(
    client, fault_storage, fault_cluster, monkeypatch
):
    monkeypatch.setattr(PathCache, "incomplete_timeout", 300)  # only asking again can help
    data = os.urandom(100_000)
    name = one_copy_then_two(fault_storage, fault_cluster, client, data)
    fault_cluster.nodes[0].stop()  # the cached path's node
    response = client.get(f"/mogilefs/{name}")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data
    assert client.head(f"/mogilefs/{name}").status_code == 200
    assert len(fault_storage.get_key_location(fault_storage.key_for(name)).paths) == 2


def test_a_location_awaiting_its_copies_is_cached_briefly(
    client, fault_storage, fault_cluster, monkeypatch
):
    monkeypatch.setattr(PathCache, "incomplete_timeout", 0.5)
    name = one_copy_then_two(fault_storage, fault_cluster, client, os.urandom(1000))
    key = fault_storage.key_for(name)
    time.sleep(0.6)
    assert len(fault_storage.get_key_location(key).paths) == 2
    assert fault_storage._path_cache.get(key) is not None  # kept: complete now

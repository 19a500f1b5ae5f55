"""The background worker: copies made, extra copies and deleted files removed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storages_mogile.devserver import DevCluster

from .helpers import Line, http_request, wait_for

FAST = 0.05


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[DevCluster]:
    with DevCluster(tmp_path, nodes=3, replication_interval=FAST) as cluster:
        yield cluster


@pytest.fixture
def line(cluster: DevCluster) -> Iterator[Line]:
    with Line(cluster.trackers[0]) as connection:
        yield connection


def devids(line: Line, key: str) -> list[int]:
    info = line.ok("file_info", domain="testdomain", key=key, devices=1)
    return sorted(int(devid) for devid in info["devids"].split(","))


def test_files_get_mindevcount_copies_on_distinct_hosts(line: Line) -> None:
    line.store("r/thumb", b"one copy", "thumb")
    line.store("r/avatar", b"two copies", "avatar")
    wait_for(lambda: line.devcount("r/avatar") == 2, what="the second avatar copy")
    paths = line.paths("r/avatar")
    assert len({path.split("/dev")[0] for path in paths}) == 2  # two nodes
    assert [http_request("GET", path)[2] for path in paths] == [b"two copies"] * 2
    # The thumb was queued first, so the worker has been through it too.
    assert line.devcount("r/thumb") == 1


def test_lowering_mindevcount_removes_extra_copies(line: Line) -> None:
    line.store("r/a", b"data", "avatar")
    wait_for(lambda: line.devcount("r/a") == 2, what="two copies")
    paths = line.paths("r/a", noverify=1)
    line.ok("update_class", domain="testdomain", **{"class": "avatar"}, mindevcount=1)
    wait_for(lambda: line.devcount("r/a") == 1, what="the extra copy to go")
    statuses = sorted(http_request("GET", path)[0] for path in paths)
    assert statuses == [200, 404]


def test_updateclass_to_a_bigger_class_adds_copies(line: Line) -> None:
    line.store("r/u", b"data", "thumb")
    line.ok("updateclass", domain="testdomain", key="r/u", **{"class": "avatar"})
    wait_for(lambda: line.devcount("r/u") == 2, what="the copy for the new class")


def test_policy_count_overrides_mindevcount(line: Line) -> None:
    line.ok(
        "create_class",
        domain="testdomain",
        **{"class": "three"},
        mindevcount=1,
        replpolicy="MultipleHosts(3)",
    )
    line.store("r/three", b"data", "three")
    wait_for(lambda: line.devcount("r/three") == 3, what="three copies")
    assert devids(line, "r/three") == [1, 2, 3]


def test_deleted_files_leave_the_nodes(line: Line) -> None:
    line.store("r/gone", b"data", "avatar")
    wait_for(lambda: line.devcount("r/gone") == 2, what="two copies")
    paths = line.paths("r/gone")
    fid = line.ok("file_info", domain="testdomain", key="r/gone")["fid"]
    line.ok("delete", domain="testdomain", key="r/gone")
    wait_for(
        lambda: all(http_request("GET", path)[0] == 404 for path in paths),
        what="the copies to be deleted",
    )
    wait_for(
        lambda: line.ok("file_debug", fid=fid) == {"checksum": "NONE"},
        what="the fid to be forgotten",
    )


def test_replication_waits_for_a_stopped_node(cluster: DevCluster, line: Line) -> None:
    for node in cluster.nodes[1:]:
        node.stop()
    opened = line.ok(
        "create_open", domain="testdomain", key="r/wait", **{"class": "avatar"}, multi_dest=1
    )
    index = next(i for i in range(1, int(opened["dev_count"]) + 1) if opened[f"devid_{i}"] == "1")
    path = opened[f"path_{index}"]
    http_request("PUT", path, b"data")
    line.ok(
        "create_close",
        domain="testdomain",
        key="r/wait",
        fid=opened["fid"],
        devid=1,
        path=path,
        size=4,
    )
    debug = lambda: line.ok("file_debug", fid=opened["fid"])
    wait_for(
        lambda: int(debug().get("replqueue_failcount", 0)) >= 2, what="failed replication attempts"
    )
    assert line.devcount("r/wait") == 1
    for node in cluster.nodes[1:]:
        node.start()
    wait_for(lambda: line.devcount("r/wait") == 2, what="the copy once the nodes are back")


def test_copies_on_a_dead_device_are_made_again(line: Line) -> None:
    line.store("r/dead", b"data", "avatar")
    wait_for(lambda: line.devcount("r/dead") == 2, what="two copies")
    lost = devids(line, "r/dead")[0]
    line.ok("set_state", host=f"node{lost}", device=lost, state="dead")
    wait_for(
        lambda: lost not in devids(line, "r/dead") and line.devcount("r/dead") == 2,
        what="a new copy",
    )
    assert (
        line.ask("set_state", host=f"node{lost}", device=lost, state="alive").code
        == "state_too_high"
    )

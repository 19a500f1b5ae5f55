"""DevCluster: setup, clean start/stop, configuration errors."""

from __future__ import annotations

import gc
import os
import re
import threading
from pathlib import Path

import pytest

from storages_mogile.devserver import DevCluster

from .helpers import Line, http_request, refused


def socket_ports() -> dict[str, set[int]]:
    """Map each TCP socket inode of this machine to its local and remote ports."""
    ports: dict[str, set[int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                local, remote, inode = (line.split()[i] for i in (1, 2, 9))
                ports[inode] = {int(end.rsplit(":", 1)[1], 16) for end in (local, remote)}
    return ports


def descriptors_into(ports: set[int], directory: Path) -> list[str]:
    """This process's open descriptors on a file in directory or a socket on ports."""
    gc.collect()
    inodes = socket_ports()
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the descriptor listdir itself used
            continue
        inode = re.fullmatch(r"socket:\[(\d+)\]", target)
        if target.startswith(str(directory)) or (inode and inodes.get(inode[1], set()) & ports):
            found.append(target)
    return found


@pytest.mark.skipif(
    not Path("/proc/net/tcp").is_file(), reason="needs /proc to list file descriptors"
)
def test_stop_leaves_no_threads_or_descriptors(tmp_path: Path) -> None:
    threads = set(threading.enumerate())
    cluster = DevCluster(tmp_path).start()
    cluster.add_tracker()
    with Line(cluster.trackers[0]) as line:
        line.store("a", b"data", "avatar")
        line.paths("a")
    idle = Line(cluster.trackers[1])  # a client that never hangs up
    addresses = cluster.trackers + [node.address for node in cluster.nodes]
    cluster.stop()
    idle.close()
    # Threads of earlier tests may still end meanwhile, and their clients may
    # open connections elsewhere: the check is that the cluster added no thread
    # and left no descriptor on its own ports or files.
    assert set(threading.enumerate()) <= threads
    assert descriptors_into({int(a.rsplit(":", 1)[1]) for a in addresses}, tmp_path) == []
    assert all(refused(address) for address in addresses)


def test_configured_domains_and_classes(tmp_path: Path) -> None:
    domains = {"photos": {"big": 3, "small": 1}, "empty": {}}
    with (
        DevCluster(tmp_path, nodes=3, domains=domains) as cluster,
        Line(cluster.trackers[0]) as line,
    ):
        listing = line.ok("get_domains")
        assert int(listing["domains"]) == 2
        classes = {
            (listing[f"domain{d}"], listing[f"domain{d}class{c}name"]): listing[
                f"domain{d}class{c}mindevcount"
            ]
            for d in (1, 2)
            for c in range(1, int(listing[f"domain{d}classes"]) + 1)
        }
        assert classes == {
            ("photos", "big"): "3",
            ("photos", "small"): "1",
            ("photos", "default"): "2",
            ("empty", "default"): "2",
        }
        hosts = line.ok("get_hosts")
        assert sorted(hosts[f"host{n}_http_port"] for n in (1, 2, 3)) == sorted(
            str(node.port) for node in cluster.nodes
        )
        assert [node.devids for node in cluster.nodes] == [[1], [2], [3]]
    with (
        DevCluster(tmp_path, nodes=3, domains={"photos": {"big": 2}}) as cluster,
        Line(cluster.trackers[0]) as line,
    ):
        listing = line.ok("get_domains")
        assert "2" == next(
            value
            for name, value in listing.items()
            if name.endswith("mindevcount")
            and listing[name.replace("mindevcount", "name")] == "big"
        )


def test_created_devices_get_a_directory_on_their_node(tmp_path: Path) -> None:
    with DevCluster(tmp_path) as cluster, Line(cluster.trackers[0]) as line:
        line.ok("create_device", hostname="node1", devid=7)
        assert cluster.nodes[0].devids == [1, 7]
        url = f"{cluster.nodes[0].url}/dev7/0/000/000/0000000001.fid"
        assert http_request("PUT", url, b"x")[0] == 200
        devices = line.ok("get_devices", devid=7)
        assert (devices["dev1_hostid"], devices["dev1_status"]) == ("1", "alive")


def test_host_and_device_admin(tmp_path: Path) -> None:
    with DevCluster(tmp_path) as cluster, Line(cluster.trackers[0]) as line:
        created = line.ok("create_host", host="extra", ip="127.0.0.9", port=7600)
        hostid = created["hostid"]
        assert line.ok("get_hosts", hostid=hostid)["host1_status"] == "down"  # new hosts start down
        line.ok("update_host", host="extra", status="alive", getport=7601)
        host = line.ok("get_hosts", hostid=hostid)
        assert (host["host1_status"], host["host1_http_get_port"]) == ("alive", "7601")
        line.ok("create_device", hostid=hostid, devid=9, state="down")
        assert line.ask("delete_host", host="extra").code == "host_not_empty"
        assert line.ask("set_weight", host="node1", device=9, weight=5).code == "host_mismatch"
        line.ok("set_weight", host="extra", device=9, weight=5)
        assert line.ok("get_devices", devid=9)["dev1_weight"] == "5"
        assert (
            line.ask("create_host", host="x", ip="1.2.3.4", port=1, status="bogus").code
            == "unknown_state"
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nodes": 0}, "at least one storage node"),
        ({"replication_interval": 0}, "replication_interval must be positive"),
        ({"domains": {"d": {"c": 0}}}, "d:c needs a mindevcount of at least 1"),
    ],
)
def test_bad_arguments_are_explained(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DevCluster(tmp_path, **kwargs)

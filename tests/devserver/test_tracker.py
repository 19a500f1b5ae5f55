"""Tracker behaviour beyond the recording: keys, trackers sharing metadata, stop/start."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from storages_mogile.client.protocol import decode_reply
from storages_mogile.devserver import DevCluster
from storages_mogile.devserver.tracker import MAX_REQUEST_LINE

from .helpers import Line, http_request, refused, wait_for


@pytest.fixture
def line(fault_cluster: DevCluster) -> Iterator[Line]:
    with Line(fault_cluster.trackers[0]) as connection:
        yield connection


def test_keys_up_to_255_bytes_are_stored(line: Line) -> None:
    key = "k/" + "é" * 126 + "x"  # 255 bytes of UTF-8
    assert len(key.encode()) == 255
    line.store(key, b"long", "thumb")
    assert line.ok("file_info", domain="testdomain", key=key)["length"] == "4"


def test_longer_keys_are_a_database_error_everywhere(line: Line) -> None:
    long_key = "k/" + "é" * 127  # 256 bytes
    assert line.ask("create_open", domain="testdomain", key=long_key).code == "db"
    opened = line.ok("create_open", domain="testdomain")  # no key yet
    assert http_request("PUT", opened["path"], b"x")[0] == 200
    closed = line.ask(
        "create_close",
        domain="testdomain",
        key=long_key,
        fid=opened["fid"],
        devid=opened["devid"],
        path=opened["path"],
    )
    assert (closed.code, closed.message) == ("db", "Database error")
    line.store("k/short", b"x", "thumb")
    assert line.ask("rename", domain="testdomain", from_key="k/short", to_key=long_key).code == "db"
    assert line.ask("file_info", domain="testdomain", key="k/short").ok


def test_repeated_argument_after_a_false_value_is_appended(line: Line) -> None:
    """``domain=0&domain=testdomain`` is ``0testdomain`` (Perl's ``.=``), not ``testdomain``."""
    assert (
        decode_reply(line.raw(b"get_paths domain=0&domain=testdomain&key=x\r\n")).code
        == "unreg_domain"
    )
    assert (
        decode_reply(line.raw(b"get_paths domain=&domain=testdomain&key=x\r\n")).code
        == "unknown_key"
    )


def test_failed_close_consumes_the_temp_file_and_removes_the_upload(line: Line) -> None:
    opened = line.ok("create_open", domain="testdomain", key="c/bad", **{"class": "thumb"})
    http_request("PUT", opened["path"], b"12345")
    args = {
        "domain": "testdomain",
        "key": "c/bad",
        "fid": opened["fid"],
        "devid": opened["devid"],
        "path": opened["path"],
    }
    assert line.ask("create_close", size=99, **args).code == "size_mismatch"
    assert line.ask("create_close", size=5, **args).code == "no_temp_file"
    wait_for(
        lambda: http_request("GET", opened["path"])[0] == 404,
        what="the failed upload to be removed",
    )


def test_checksums_are_verified_and_kept_for_hashed_classes(line: Line) -> None:
    line.ok("create_class", domain="testdomain", **{"class": "sums"}, mindevcount=1, hashtype="MD5")
    opened = line.ok("create_open", domain="testdomain", key="sum/a", **{"class": "sums"})
    http_request("PUT", opened["path"], b"hello")
    args = {
        "domain": "testdomain",
        "key": "sum/a",
        "fid": opened["fid"],
        "devid": opened["devid"],
        "path": opened["path"],
    }
    wrong = line.ask("create_close", checksum="MD5:" + "0" * 32, checksumverify=1, **args)
    assert wrong.code == "checksum_mismatch"
    assert "actual: MD5:5d41402abc4b2a76b9719d911017c592" in wrong.message
    opened = line.ok("create_open", domain="testdomain", key="sum/a", **{"class": "sums"})
    http_request("PUT", opened["path"], b"hello")
    args.update(fid=opened["fid"], devid=opened["devid"], path=opened["path"])
    line.ok(
        "create_close", checksum="MD5:5d41402abc4b2a76b9719d911017c592", checksumverify=1, **args
    )
    info = line.ok("file_info", domain="testdomain", key="sum/a")
    assert info["checksum"] == "MD5:5d41402abc4b2a76b9719d911017c592"
    assert line.ask("create_close", checksum="SHA1:xyz", **args).code == "invalid_checksum_format"


def test_two_trackers_share_the_metadata(fault_cluster: DevCluster, line: Line) -> None:
    second = fault_cluster.add_tracker()
    assert fault_cluster.trackers[1] == second.address
    with Line(second.address) as other:
        line.store("tt/a", b"shared", "thumb")
        assert other.ok("file_info", domain="testdomain", key="tt/a")["length"] == "6"
        other.ok("create_domain", domain="fresh")
        assert line.ask("get_paths", domain="fresh", key="x").code == "unknown_key"  # known at once
        opened = other.ok("create_open", domain="testdomain", key="tt/b", **{"class": "thumb"})
        http_request("PUT", opened["path"], b"b")
        line.ok(
            "create_close",
            domain="testdomain",
            key="tt/b",
            fid=opened["fid"],
            devid=opened["devid"],
            path=opened["path"],
            size=1,
        )
        assert other.paths("tt/b") == [opened["path"]]


def test_concurrent_clients_get_distinct_fids(fault_cluster: DevCluster) -> None:
    fids: list[int] = []
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            with Line(fault_cluster.trackers[0]) as connection:
                for n in range(10):
                    fids.append(connection.store(f"conc/{index}/{n}", b"x", "thumb"))
        except (OSError, AssertionError) as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(fids)) == 40


def test_pipelined_requests_are_answered_in_order(line: Line) -> None:
    line.sock.sendall(b"".join(b"noop\r\nfoobar\r\n" for _ in range(50)))
    replies = [line.reader.readline() for _ in range(100)]
    assert replies == [b"OK \r\n", b"ERR unknown_command Unknown+server+command\r\n"] * 50


def test_stop_refuses_then_start_serves_on_the_same_port(fault_cluster: DevCluster) -> None:
    server = fault_cluster.tracker_servers[0]
    with Line(server.address) as connection:
        connection.store("st/a", b"kept", "thumb")
        server.stop()
        assert not server.running
        assert refused(server.address)
        try:
            reply = connection.raw(b"noop\r\n")
        except OSError:  # reset instead of a clean close: dropped either way
            reply = b""
        assert reply == b""
    server.start()
    with Line(server.address) as connection:
        assert connection.ok("file_info", domain="testdomain", key="st/a")["length"] == "4"


def test_stop_interrupts_a_sleeping_request(fault_cluster: DevCluster) -> None:
    server = fault_cluster.tracker_servers[0]
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"sleep duration=600\r\n")
        server.stop()  # must not wait out the sleep
    assert not server.running


def test_store_over_the_same_directory_keeps_files(tmp_path: Path) -> None:
    with DevCluster(tmp_path) as cluster, Line(cluster.trackers[0]) as connection:
        connection.store("keep/a", b"persisted", "thumb")
    with DevCluster(tmp_path) as cluster, Line(cluster.trackers[0]) as connection:
        (path,) = connection.paths("keep/a")
        assert path.startswith(tuple(node.url for node in cluster.nodes))
        assert http_request("GET", path)[2] == b"persisted"


# What one client sends never blocks, exhausts or silently drops a request


@pytest.mark.timeout(30)
@pytest.mark.parametrize("prefix", ["(a+)+$", "(a|aa)*$", "a*a*a*a*a*a*a*a*$"])
def test_a_runaway_prefix_pattern_is_refused_not_run(line: Line, prefix: str) -> None:
    # mogilefsd checks `$after =~ /^$prefix/`; these take 2^40 steps against this after.
    reply = line.ask("list_keys", domain="testdomain", prefix=prefix, after="a" * 40 + "!")
    assert reply.code == "bad_params" and "regular expression" in reply.message
    assert line.ok("noop") == {}  # the tracker still answers


def test_ordinary_prefix_patterns_still_match_as_regexes(line: Line) -> None:
    # "a+b" as a regex matches "aab"; "c.d" matches "cxd"; "x+/" does not match "x+/k".
    assert line.ask("list_keys", domain="testdomain", prefix="a+b", after="aab").code == (
        "none_match"
    )
    assert line.ask("list_keys", domain="testdomain", prefix="c.d", after="cxd").code == (
        "none_match"
    )
    assert line.ask("list_keys", domain="testdomain", prefix="x+/", after="x+/k").code == (
        "after_mismatch"
    )


def test_an_endless_request_line_is_refused_and_the_connection_closed(line: Line) -> None:
    line.sock.sendall(b"noop " + b"x" * (MAX_REQUEST_LINE + 1))  # no line end
    assert line.reader.readline().startswith(b"ERR request_too_long ")
    assert line.reader.readline() == b""  # closed


def test_an_idle_connection_is_closed(tmp_path: Path) -> None:
    with (
        DevCluster(tmp_path, tracker_idle_timeout=0.3) as cluster,
        Line(cluster.trackers[0]) as idle,
    ):
        assert idle.ok("noop") == {}
        assert wait_for(lambda: idle.sock.recv(1) == b"", what="the idle connection to close")

"""Tracker connections, failover and retries, against scripted tracker sockets.

The reply lines are the ones a real mogilefsd 2.73 sent (PROTOCOL.md and
vectors.jsonl in tests/data/mogilefs; seq numbers in comments).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import tracemalloc

import pytest

from storages_mogile.client import (
    Admin,
    Client,
    KeyExistsError,
    NoDevicesError,
    NoPathsError,
    TrackerError,
    TrackerUnavailableError,
    UnknownClassError,
    UnknownDomainError,
    UnknownKeyError,
)
from storages_mogile.client.core import MAX_REPLY_BYTES
from storages_mogile.client.protocol import Request
from storages_mogile.client.trackers import TrackerPool

from .fakes import (
    Answer,
    SilentTracker,
    closed_port,
    late_first,
    replies,
    stray_line,
)

PATH = "http://127.0.0.1:7500/dev1/0/000/000/0000000001.fid"


def never(request: Request, number: int) -> Answer:
    return Answer(None)


def test_ok_with_nothing_after_it(tracker_factory) -> None:
    tracker = tracker_factory(replies("OK ", "OK "))  # seq 1: "OK " + CRLF
    client = Client("testdomain", [tracker.address])
    assert client.delete("k") is None
    assert client.update_class("k2", "thumb") is None
    assert tracker.commands() == ["delete", "updateclass"]
    assert tracker.received[1].request.args == {
        "domain": "testdomain",
        "key": "k2",
        "class": "thumb",
    }


def test_arguments_in_any_order_are_read_by_name(tracker_factory) -> None:
    # seq 388/389: the same answer with its arguments in two different orders.
    tracker = tracker_factory(
        replies(
            "OK path1=http://127.0.0.1:7500/dev1/0/000/000/0000000070.fid"
            "&path2=http://127.0.0.2:7510/dev2/0/000/000/0000000070.fid&paths=2",
            "OK path1=http://127.0.0.1:7500/dev1/0/000/000/0000000070.fid&paths=2"
            "&path2=http://127.0.0.2:7510/dev2/0/000/000/0000000070.fid",
            "OK devcount=2&class=avatar&key=rt/file1&fid=1&devids=1,2&domain=testdomain&length=16",
        )
    )
    client = Client("testdomain", tracker.address)
    expected = [
        "http://127.0.0.1:7500/dev1/0/000/000/0000000070.fid",
        "http://127.0.0.2:7510/dev2/0/000/000/0000000070.fid",
    ]
    assert client.get_paths("a") == expected
    assert client.get_paths("a") == expected
    info = client.file_info("rt/file1")
    assert (info.fid, info.key, info.cls, info.length, info.devcount) == (
        1,
        "rt/file1",
        "avatar",
        16,
        2,
    )


def test_paths_zero_means_no_copy(tracker_factory) -> None:
    # seq 395: the only copy is missing on disk -> "OK paths=0", not an error.
    info = "OK fid=9&key=gone&domain=testdomain&class=default&length=3&devcount=0"
    tracker = tracker_factory(replies("OK paths=0", info, "OK paths=0", info, "OK paths=0"))
    client = Client("testdomain", [tracker.address])
    assert client.get_paths("gone") == []
    with pytest.raises(NoPathsError, match=r"'gone'.*the tracker returned no paths"):
        client.read_file("gone")
    with pytest.raises(NoPathsError, match=r"'gone'.*the tracker returned no paths"):
        client.stat("gone")
    with pytest.raises(NoPathsError, match=r"'gone'.*no paths were given"):
        client.stat("gone", paths=[])
    assert tracker.commands() == ["get_paths"] + ["file_info", "get_paths"] * 2


def test_none_match_is_the_end_of_the_list(tracker_factory) -> None:
    none_match = "ERR none_match No+keys+match+that+pattern+and+after-value+%28if+any%29."
    tracker = tracker_factory(
        replies(
            none_match,
            "OK key_1=lk/a&key_count=2&next_after=lk/b&key_2=lk/b",
            "OK key_count=1&key_1=lk/c&next_after=lk/c",
            none_match,
        )
    )
    client = Client("testdomain", [tracker.address])
    assert client.list_keys(prefix="nothing/") == []
    assert list(client.iter_keys(prefix="lk/", page_size=2)) == ["lk/a", "lk/b", "lk/c"]
    afters = [item.request.args.get("after") for item in tracker.received[1:]]
    assert afters == [None, "lk/b", "lk/c"]


@pytest.mark.parametrize(
    ("call", "line", "error"),
    [
        (lambda c: c.get_paths("k"), "ERR unknown_key unknown_key", UnknownKeyError),
        (lambda c: c.update_class("k", "thumb"), "ERR invalid_key invalid_key", UnknownKeyError),
        (
            lambda c: c.get_paths("k"),
            "ERR unreg_domain Domain+name+invalid/not+found",
            UnknownDomainError,
        ),
        (
            lambda c: c.store_content("k", b"x", "nope"),
            "ERR unreg_class unreg_class",
            UnknownClassError,
        ),
        (
            lambda c: c.update_class("k", "nope"),
            "ERR class_not_found Class+not+found",
            UnknownClassError,
        ),
        (
            lambda c: c.rename("k", "taken"),
            "ERR key_exists Target+key+name+already+exists%3B+can%27t+overwrite.",
            KeyExistsError,
        ),
        (
            lambda c: c.store_content("k", b"x"),
            "ERR no_devices No+devices+found+to+store+file",
            NoDevicesError,
        ),
    ],
)
def test_error_codes_become_typed_errors(tracker_factory, call, line, error) -> None:
    tracker = tracker_factory(replies(line))
    client = Client("testdomain", [tracker.address])
    with pytest.raises(error) as caught:
        call(client)
    assert tracker.address in str(caught.value)
    assert "'k'" in str(caught.value) and "'testdomain'" in str(caught.value)
    assert caught.value.code == line.split()[1]


def test_admin_domain_not_found_is_an_unknown_domain(tracker_factory) -> None:
    tracker = tracker_factory(replies("ERR domain_not_found Domain+not+found"))  # seq 36
    with pytest.raises(UnknownDomainError, match="Domain not found"):
        Admin([tracker.address]).create_class("nodomain", "c1", 1)


def test_unknown_key_is_also_a_file_not_found(tracker_factory) -> None:
    tracker = tracker_factory(replies("ERR unknown_key unknown_key"))
    with pytest.raises(FileNotFoundError):
        Client("testdomain", [tracker.address]).file_info("missing")


def test_refused_tracker_is_skipped(tracker_factory) -> None:
    good = tracker_factory(
        lambda request, number: Answer(b"OK paths=1&path1=" + PATH.encode() + b"\r\n")
    )
    client = Client("testdomain", [closed_port(), good.address], backoff=60)
    for _ in range(5):
        assert client.get_paths("k") == [PATH]
    assert len(good.received) == 5


def test_failed_tracker_rests_for_backoff_seconds(tracker_factory, in_given_order) -> None:
    hangup = tracker_factory(lambda request, number: Answer(None, close=True))
    good = tracker_factory(lambda request, number: Answer(b"OK \r\n"))
    client = Client("testdomain", [hangup.address, good.address], backoff=60)
    for _ in range(4):
        client.delete("k")
    assert hangup.connections == 1  # tried once, then left alone
    assert len(good.received) == 4


def test_no_tracker_answering_names_every_tracker_and_why(tracker_factory) -> None:
    first, second = closed_port(), closed_port()
    client = Client("testdomain", [first, second], connect_timeout=2)
    with pytest.raises(TrackerUnavailableError) as caught:
        client.file_info("k")
    message = str(caught.value)
    assert first in message and second in message and "connect failed" in message
    assert sorted(address for address, _ in caught.value.attempts) == sorted([first, second])


def test_silent_tracker_times_out(in_given_order) -> None:
    silent = SilentTracker()
    try:
        client = Client("testdomain", [silent.address], timeout=0.5)
        started = time.monotonic()
        with pytest.raises(TrackerUnavailableError, match=r"no reply within 0\.5 s") as caught:
            client.get_paths("k")
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert silent.address in str(caught.value)
    assert elapsed < 0.5 + 5  # a correctness bound (it must not hang), not a speed test


def test_idempotent_command_is_sent_once_more_elsewhere(tracker_factory) -> None:
    first, second = tracker_factory(never), tracker_factory(never)
    client = Client("testdomain", [first.address, second.address], timeout=0.3)
    with pytest.raises(TrackerUnavailableError):
        client.get_paths("k")
    assert len(first.received) + len(second.received) == 2


def test_lone_tracker_gets_a_second_try_on_a_new_connection(tracker_factory) -> None:
    tracker = tracker_factory(never)
    client = Client("testdomain", [tracker.address], timeout=0.3, backoff=0)
    with pytest.raises(TrackerUnavailableError):
        client.get_paths("k")
    assert tracker.commands() == ["get_paths", "get_paths"] and tracker.connections == 2


def test_non_idempotent_command_without_settle_is_not_resent(tracker_factory) -> None:
    first, second = tracker_factory(never), tracker_factory(never)
    pool = TrackerPool([first.address, second.address], timeout=0.3)
    with pytest.raises(TrackerUnavailableError, match="may or may not have taken effect"):
        pool.call("create_close", {"domain": "testdomain", "key": "k", "fid": 1})
    assert len(first.received) + len(second.received) == 1


def test_rename_looks_at_both_keys_first(tracker_factory) -> None:
    """The first time, also whether the tracker folds keys (``a `` and ``A``
    unknown: it compares bytes, and ``a`` is exactly the key asked for)."""
    tracker = tracker_factory(
        replies(
            "OK fid=7&key=a&domain=testdomain&class=default&length=1&devcount=1",
            "ERR unknown_key unknown_key",
            "ERR unknown_key unknown_key",
            "ERR unknown_key unknown_key",
            "OK ",
            "OK fid=7&key=a&domain=testdomain&class=default&length=1&devcount=1",
            "OK fid=8&key=b&domain=testdomain&class=default&length=1&devcount=1",
        )
    )
    client = Client("testdomain", [tracker.address])
    client.rename("a", "b")
    assert tracker.commands() == ["file_info"] * 4 + ["rename"]
    with pytest.raises(KeyExistsError):  # never sent: the tracker would answer twice
        client.rename("a", "b")
    assert tracker.commands()[5:] == ["file_info", "file_info"]


def test_retry_reaches_a_working_tracker(tracker_factory, in_given_order) -> None:
    hung = tracker_factory(never)
    good = tracker_factory(
        lambda request, number: Answer(b"OK paths=1&path1=" + PATH.encode() + b"\r\n")
    )
    client = Client("testdomain", [hung.address, good.address], timeout=0.3)
    assert client.get_paths("k") == [PATH]
    assert hung.commands() == ["get_paths"] and good.commands() == ["get_paths"]


def test_retried_delete_finding_no_key_has_succeeded(tracker_factory, in_given_order) -> None:
    # The first tracker may have deleted the key before it stopped answering.
    hung = tracker_factory(never)
    other = tracker_factory(replies("ERR unknown_key unknown_key"))
    client = Client("testdomain", [hung.address, other.address], timeout=0.3)
    assert client.delete("k") is None


def test_delete_of_an_unknown_key_fails_when_not_retried(tracker_factory) -> None:
    tracker = tracker_factory(replies("ERR unknown_key unknown_key"))
    with pytest.raises(UnknownKeyError):
        Client("testdomain", [tracker.address]).delete("k")


def test_late_reply_never_answers_the_next_command(tracker_factory) -> None:
    tracker = tracker_factory(late_first(1.0))
    client = Client("testdomain", [tracker.address], timeout=0.6, backoff=0)
    # Sent again at once: on the old connection the late reply would arrive
    # within this request's timeout and be taken as its answer.
    assert client.get_paths("k") == ["http://fresh/2"]
    assert client.get_paths("k") == ["http://fresh/2"]  # the same, second connection
    assert tracker.connections == 2


def test_interrupted_call_never_leaves_its_reply_to_the_next(tracker_factory) -> None:
    # An exception from a signal handler (a request timeout, Ctrl-C) can
    # leave call() while the reply is still owed; it must not answer the
    # next command when it comes.

    class Interrupted(Exception):
        pass

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    tracker = tracker_factory(late_first(2.0))
    client = Client("testdomain", [tracker.address])
    previous = signal.signal(signal.SIGUSR1, interrupt)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1))
    try:
        timer.start()
        with pytest.raises(Interrupted):
            client.get_paths("k")
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)
    assert client.get_paths("k") == ["http://fresh/2"]
    assert tracker.connections == 2


def test_extra_reply_line_retires_the_connection(tracker_factory) -> None:
    tracker = tracker_factory(stray_line)
    client = Client("testdomain", [tracker.address])
    client.delete("k")
    assert client.get_paths("k") == ["http://right/"]
    assert tracker.connections == 2


def test_garbage_reply_is_a_tracker_failure(tracker_factory, in_given_order) -> None:
    garbage = tracker_factory(lambda request, number: Answer(b"HTTP/1.0 400 Bad request\r\n"))
    good = tracker_factory(replies("OK paths=0"))
    client = Client("testdomain", [garbage.address, good.address])
    assert client.get_paths("k") == []
    with pytest.raises(TrackerUnavailableError, match="unexpected tracker reply"):
        Client("testdomain", [garbage.address]).get_paths("k")


def test_closed_connection_is_reopened_before_sending(tracker_factory) -> None:
    # A tracker that hangs up after every answer: even non-idempotent
    # commands go through, on a new connection each time.
    tracker = tracker_factory(lambda request, number: Answer(b"OK \r\n", close=True))
    admin = Admin([tracker.address])
    for index in range(3):
        admin.create_domain(f"d{index}")
        time.sleep(0.05)  # let the hang-up arrive
    assert tracker.connections == 3


def test_connection_is_reused(tracker_factory) -> None:
    tracker = tracker_factory(lambda request, number: Answer(b"OK \r\n"))
    client = Client("testdomain", [tracker.address])
    for _ in range(5):
        client.delete("k")
    assert tracker.connections == 1


def test_each_thread_has_its_own_connection(tracker_factory) -> None:
    tracker = tracker_factory(lambda request, number: Answer(b"OK \r\n"))
    client = Client("testdomain", [tracker.address])
    barrier = threading.Barrier(3)

    def work() -> None:
        client.delete("k")
        barrier.wait()
        client.delete("k")

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tracker.connections == 3
    assert len(tracker.received) == 6


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_opens_its_own_connection(tracker_factory) -> None:
    tracker = tracker_factory(
        lambda request, number: Answer(f"OK paths=1&path1=http://c/{number}\r\n".encode())
    )
    client = Client("testdomain", [tracker.address])
    assert client.get_paths("k") == ["http://c/1"]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it got, never return into pytest
        try:
            os.write(write_end, client.get_paths("k")[0].encode())
        finally:
            os._exit(0)
    os.close(write_end)
    child_answer = os.read(read_end, 100).decode()
    os.waitpid(pid, 0)
    os.close(read_end)
    assert child_answer == "http://c/2"
    assert client.get_paths("k") == ["http://c/1"]  # the parent's connection is intact


def test_tracker_addresses_are_checked() -> None:
    with pytest.raises(ValueError, match="no MogileFS trackers"):
        Client("testdomain", [])
    with pytest.raises(ValueError, match="expected 'host:port'"):
        Client("testdomain", ["localhost"])
    assert Client("d", " 127.0.0.1:1 , 127.0.0.1:2 ").trackers.trackers == [
        "127.0.0.1:1",
        "127.0.0.1:2",
    ]


def test_admin_parses_numbered_replies(tracker_factory) -> None:
    tracker = tracker_factory(
        replies(
            # seq 25, classes in the order the server sent them
            "OK domain1class1name=avatar&domain1class2name=thumb&domain1class3name=default"
            "&domain1=testdomain&domains=1&domain1class1mindevcount=2&domain1class2mindevcount=1"
            "&domain1class3mindevcount=2&domain1classes=3",
            # seq 63
            "OK host1_altip=&host1_altmask=&hosts=1&host1_http_port=7510&host1_status=alive"
            "&host1_hostname=node2&host1_hostip=127.0.0.2&host1_http_get_port=&host1_hostid=2",
            "OK devices=0",  # seq 67
        )
    )
    admin = Admin([tracker.address])
    assert admin.get_domains() == {"testdomain": {"avatar": 2, "thumb": 1, "default": 2}}
    [host] = admin.get_hosts(2)
    assert host["hostid"] == "2" and host["hostname"] == "node2" and host["http_get_port"] == ""
    assert admin.get_devices(99) == []
    assert tracker.received[1].request.args == {"hostid": "2"}


def test_tracker_error_keeps_code_and_message(tracker_factory) -> None:
    tracker = tracker_factory(replies("ERR domain_has_classes domain_has_classes"))
    with pytest.raises(TrackerError) as caught:
        Admin([tracker.address]).delete_domain("d2")
    assert caught.value.code == "domain_has_classes"
    assert caught.value.command == "delete_domain"


def test_endless_reply_line_is_cut_off(tracker_factory) -> None:
    endless = b"OK paths=1&path1=" + b"x" * (64 << 20)  # no line end in 64 MiB
    tracker = tracker_factory(lambda request, number: Answer(endless))
    client = Client("testdomain", [tracker.address], backoff=0)
    tracemalloc.start()
    try:
        with pytest.raises(TrackerUnavailableError) as caught:
            client.get_paths("k")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "reply line longer than" in str(caught.value)
    assert len(str(caught.value)) < 2000
    assert peak < 3 * MAX_REPLY_BYTES


def test_close_closes_every_threads_connection_and_the_pool(tracker_factory) -> None:
    tracker = tracker_factory(lambda request, number: Answer(b"OK paths=0\r\n"))
    client = Client("testdomain", [tracker.address])
    used, done = threading.Barrier(5), threading.Event()

    def work() -> None:
        client.get_paths("k")
        used.wait()
        done.wait()  # the thread (and its connection) outlives close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    used.wait()
    node_pool = client.http
    node_pool.connection_from_url("http://127.0.0.1:9/")  # a pool to clear
    with client:
        pass  # leaving the block closes the client
    deadline = time.monotonic() + 5
    while tracker.open_connections() and time.monotonic() < deadline:
        time.sleep(0.01)
    done.set()
    for thread in threads:
        thread.join()
    assert tracker.connections == 4 and tracker.open_connections() == 0
    assert len(node_pool.pools) == 0
    assert client.get_paths("k") == []  # usable again, on a new connection
    client.close()


def test_admin_is_a_context_manager(tracker_factory) -> None:
    tracker = tracker_factory(lambda request, number: Answer(b"OK domains=0\r\n"))
    with Admin([tracker.address]) as admin:
        assert admin.get_domains() == {}
    deadline = time.monotonic() + 5
    while tracker.open_connections() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tracker.open_connections() == 0

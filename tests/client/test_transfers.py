"""Uploads and reads against storage nodes that fail in chosen ways.

The tracker is scripted; the nodes are small HTTP servers (tests/client/fakes)
that refuse, break mid-body, ignore Range, or hold a different size.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from storages_mogile.client import (
    Client,
    NoPathsError,
    StorageNodeError,
    TrackerError,
    UnrewindableSourceError,
)
from storages_mogile.client.protocol import Request, encode_ok

from .fakes import Answer, FakeNode, ScriptedTracker, closed_port

DATA = bytes(range(256)) * 40  # 10240 bytes


class NonSeekable(io.RawIOBase):
    """A pipe-like binary source: readable, not seekable."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._data.readinto(buffer)


class FailingFile(io.BytesIO):
    """A file whose reads fail after the first chunk."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads > 1:
            raise OSError("disk on fire")
        return super().read(size)


@pytest.fixture
def nodes() -> Iterator[list[FakeNode]]:
    made: list[FakeNode] = []
    yield made
    for node in made:
        node.close()


def upload_tracker(destinations: list[str], close_line: bytes = b"OK \r\n") -> ScriptedTracker:
    """A tracker offering ``destinations`` (base URLs) at create_open."""

    def respond(request: Request, number: int) -> Answer:
        if request.command == "create_open":
            args: dict[str, str | int] = {"fid": 7, "dev_count": len(destinations)}
            for index, base in enumerate(destinations, start=1):
                args[f"devid_{index}"] = index
                args[f"path_{index}"] = f"{base}/dev{index}/0/000/000/0000000007.fid"
            return Answer(encode_ok(args))
        if request.command == "get_domains":  # no class of the domain has a hash type
            return Answer(encode_ok({"domains": 0}))
        return Answer(close_line)

    return ScriptedTracker(respond)


def closed_args(tracker: ScriptedTracker) -> dict[str, str]:
    [close] = [item.request for item in tracker.received if item.request.command == "create_close"]
    return close.args


def test_upload_streams_with_content_length(nodes) -> None:
    node = FakeNode()
    nodes.append(node)
    tracker = upload_tracker([node.url])
    client = Client("d", [tracker.address], chunk_size=1000)
    source = io.BytesIO(b"skip" + DATA)
    source.seek(4)  # stores from the current position
    assert client.store_file("k", source) == len(DATA)
    assert node.stored == {"/dev1/0/000/000/0000000007.fid": DATA}
    args = closed_args(tracker)
    assert (args["key"], args["fid"], args["devid"], args["size"]) == (
        "k",
        "7",
        "1",
        str(len(DATA)),
    )
    assert args["path"] == f"{node.url}/dev1/0/000/000/0000000007.fid"
    assert tracker.received[0].request.args == {"domain": "d", "key": "k", "multi_dest": "1"}
    tracker.close()


def test_refused_destination_passes_the_upload_on(nodes) -> None:
    node = FakeNode()
    nodes.append(node)
    tracker = upload_tracker([f"http://{closed_port()}", node.url])
    client = Client("d", [tracker.address])
    # Nothing was read before the refusal, so even a non-seekable file can move on.
    assert client.store_file("k", NonSeekable(DATA)) == len(DATA)
    assert node.stored == {"/dev2/0/000/000/0000000007.fid": DATA}
    assert closed_args(tracker)["devid"] == "2"
    tracker.close()


def test_failed_destination_rewinds_a_seekable_file(nodes) -> None:
    broken, good = FakeNode(put_status=500, put_read=3000), FakeNode()
    nodes.extend([broken, good])
    tracker = upload_tracker([broken.url, good.url])
    client = Client("d", [tracker.address], chunk_size=1024, verify_checksum=True)
    assert client.store_file("k", io.BytesIO(DATA)) == len(DATA)
    assert good.stored == {"/dev2/0/000/000/0000000007.fid": DATA}
    args = closed_args(tracker)
    assert (args["devid"], args["size"]) == ("2", str(len(DATA)))
    assert args["checksum"] == "MD5:" + hashlib.md5(DATA).hexdigest()
    assert args["checksumverify"] == "1"
    tracker.close()


def test_non_seekable_file_cannot_be_rewound(nodes) -> None:
    broken, good = FakeNode(put_status=500, put_read=10), FakeNode()
    nodes.extend([broken, good])
    tracker = upload_tracker([broken.url, good.url])
    client = Client("d", [tracker.address], chunk_size=1024)
    with pytest.raises(UnrewindableSourceError, match="non-seekable file, which cannot be rewound"):
        client.store_file("k", NonSeekable(DATA))
    assert tracker.commands() == ["create_open", "get_domains"]  # never committed
    assert good.stored == {}
    tracker.close()


def test_every_destination_failing_commits_nothing(nodes) -> None:
    first, second = FakeNode(put_status=404), FakeNode(put_status=507)
    nodes.extend([first, second])
    tracker = upload_tracker([first.url, second.url])
    with pytest.raises(StorageNodeError, match="failed at every destination") as caught:
        Client("d", [tracker.address]).store_content("k", DATA)
    assert "HTTP 404" in str(caught.value) and "HTTP 507" in str(caught.value)
    assert tracker.commands() == ["create_open", "get_domains"]
    tracker.close()


def test_failing_input_file_is_reported_as_itself(nodes) -> None:
    node = FakeNode()
    nodes.append(node)
    tracker = upload_tracker([node.url, node.url])
    with pytest.raises(OSError, match="disk on fire"):
        Client("d", [tracker.address], chunk_size=100).store_file("k", FailingFile(DATA))
    assert tracker.commands() == ["create_open", "get_domains"]
    tracker.close()


def test_text_file_is_refused(nodes) -> None:
    node = FakeNode()
    nodes.append(node)
    tracker = upload_tracker([node.url])
    with pytest.raises(TypeError, match="binary mode"):
        Client("d", [tracker.address]).store_file("k", io.StringIO("text"))
    tracker.close()


def test_failed_create_close_is_raised_not_retried(nodes) -> None:
    # seq 117: a failed close consumes the temp file; the client must not
    # quietly try again with another body or reuse the fid.
    node = FakeNode()
    nodes.append(node)
    tracker = upload_tracker(
        [node.url],
        close_line=b"ERR size_mismatch Expected:+99%3B+actual:+5%3B+path:+http://127.0.0.2:7510/"
        b"dev2/0/000/000/0000000007.fid\r\n",
    )
    with pytest.raises(TrackerError, match="size_mismatch: Expected: 99; actual: 5") as caught:
        Client("d", [tracker.address]).store_content("k", b"12345")
    assert caught.value.code == "size_mismatch" and caught.value.key == "k"
    assert tracker.commands() == ["create_open", "get_domains", "create_close"]
    tracker.close()


def test_new_file_stores_on_close_and_aborts_on_error(nodes) -> None:
    node = FakeNode()
    nodes.append(node)
    tracker = upload_tracker([node.url])
    client = Client("d", [tracker.address])
    client.spool_size = 1000  # spill to disk early
    with pytest.raises(RuntimeError), client.new_file("k", "thumb") as file:
        file.write(DATA)
        raise RuntimeError("stop")
    assert tracker.received == []  # nothing stored, not even opened
    with client.new_file("k", "thumb") as file:
        file.write(DATA[:5000])
        file.write(memoryview(DATA)[5000:])
    assert file.length == len(DATA)
    assert node.stored == {"/dev1/0/000/000/0000000007.fid": DATA}
    assert tracker.received[0].request.args["class"] == "thumb"
    with pytest.raises(ValueError, match="closed"):
        file.write(b"more")
    tracker.close()


def paths_of(*nodes_or_urls: FakeNode | str) -> list[str]:
    return [f"{getattr(n, 'url', n)}/dev1/0/000/000/0000000007.fid" for n in nodes_or_urls]


def reading_client() -> Client:
    return Client("d", "127.0.0.1:1", chunk_size=4096)  # paths= given: no tracker needed


def test_read_falls_through_refusals_and_errors(nodes) -> None:
    missing, good = FakeNode(get_status=404), FakeNode(DATA)
    nodes.extend([missing, good])
    stream = reading_client().read_file(
        "k", paths=paths_of(f"http://{closed_port()}", missing, good)
    )
    assert stream.url == paths_of(good)[0]
    assert stream.size == len(DATA)
    assert stream.read() == DATA
    stream.close()


@pytest.mark.parametrize(
    "header",
    ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"],
)
def test_a_copy_is_dated_in_utc_in_every_http_date_form(nodes, header: str) -> None:
    """The three forms of an HTTP date (RFC 9110, 5.6.7), all in UTC: the
    asctime one names no zone, and a date without one could be compared
    with no other (mogilefs_audit's ages, get_modified_time)."""
    node = FakeNode(DATA, last_modified=header)
    nodes.append(node)
    client = reading_client()
    expected = datetime(1994, 11, 6, 8, 49, 37, tzinfo=timezone.utc)
    assert client.stat("k", paths=paths_of(node)).last_modified == expected
    with client.read_file("k", paths=paths_of(node)) as stream:
        assert stream.last_modified == expected


def test_read_resumes_mid_stream_at_the_next_replica(nodes) -> None:
    cut, good = FakeNode(DATA, cut_after=3000), FakeNode(DATA)
    nodes.extend([cut, good])
    with reading_client().read_file("k", paths=paths_of(cut, good)) as stream:
        assert io.BufferedReader(stream).read() == DATA
    assert good.requests == [("GET", "/dev1/0/000/000/0000000007.fid", "bytes=3000-")]


def test_ranged_read_resumes_with_its_end(nodes) -> None:
    cut, good = FakeNode(DATA, cut_after=100), FakeNode(DATA)
    nodes.extend([cut, good])
    with reading_client().read_file(
        "k", offset=1000, length=500, paths=paths_of(cut, good)
    ) as stream:
        assert stream.read() == DATA[1000:1500]
    assert cut.requests[0][2] == "bytes=1000-1499"
    assert good.requests[0][2] == "bytes=1100-1499"


def test_node_ignoring_range_is_skipped_to_the_offset(nodes) -> None:
    node = FakeNode(DATA, ignore_range=True)
    nodes.append(node)
    with reading_client().read_file("k", offset=5000, length=10, paths=paths_of(node)) as stream:
        assert stream.read() == DATA[5000:5010]
        assert stream.size == len(DATA)


def test_replica_of_another_size_is_not_used(nodes) -> None:
    cut, other, good = FakeNode(DATA, cut_after=10), FakeNode(DATA + b"x"), FakeNode(DATA)
    nodes.extend([cut, other, good])
    with reading_client().read_file("k", paths=paths_of(cut, other, good)) as stream:
        assert stream.read() == DATA
    assert stream.url is not None and stream.url.startswith(good.url)


def test_all_replicas_failing_names_each(nodes) -> None:
    cut = FakeNode(DATA, cut_after=10)
    nodes.append(cut)
    refused = f"http://{closed_port()}"
    stream = reading_client().read_file("k", paths=paths_of(cut, refused))
    with pytest.raises(NoPathsError) as caught:
        stream.read()
    assert [url for url, _ in caught.value.attempts] == paths_of(cut, refused)
    assert "from byte 10" in str(caught.value) and "'k'" in str(caught.value)


def test_seek_and_readinto(nodes) -> None:
    node = FakeNode(DATA)
    nodes.append(node)
    with reading_client().read_file("k", offset=100, paths=paths_of(node)) as stream:
        buffer = bytearray(10)
        assert stream.readinto(buffer) == 10 and buffer == DATA[100:110]
        assert stream.seek(-5, io.SEEK_END) == len(DATA) - 105
        assert stream.read() == DATA[-5:]
        assert stream.seek(0) == 0 and stream.tell() == 0
        assert stream.read(3) == DATA[100:103]
    assert stream.closed


def test_closed_streams_give_their_connection_back(nodes) -> None:
    node = FakeNode(DATA)
    nodes.append(node)
    client = reading_client()
    for _ in range(3):  # read to the end: the keep-alive connection is reused
        with client.read_file("k", paths=paths_of(node)) as stream:
            assert stream.read() == DATA
    assert node.connections == 1
    with client.read_file("k", paths=paths_of(node)) as stream:
        assert stream.read(10) == DATA[:10]  # abandoned half-way: that connection is closed
    with client.read_file("k", paths=paths_of(node)) as stream:
        assert stream.read() == DATA  # and the next read gets clean bytes
    assert node.connections == 2


def test_dropped_new_file_is_discarded(nodes, caplog: pytest.LogCaptureFixture) -> None:
    node = FakeNode()
    nodes.append(node)
    tracker = upload_tracker([node.url])
    file = Client("d", [tracker.address]).new_file("k")
    file.write(b"never closed")
    del file
    assert tracker.received == [] and node.stored == {}
    assert "never closed; discarded" in caplog.text
    tracker.close()


def test_key_is_checked_before_anything_is_sent() -> None:
    client = Client("d", "127.0.0.1:1")
    with pytest.raises(TypeError, match="keys are str"):
        client.get_paths(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not be empty"):
        client.store_content("", b"x")
    with pytest.raises(ValueError, match="cannot be sent"):
        client.delete("\ud800")
    with pytest.raises(ValueError, match="would be stored as 'é'"):
        client.file_info("\udcc3\udca9")
    with pytest.raises(ValueError, match="domain must be a non-empty str"):
        Client("", "127.0.0.1:1")
    with pytest.raises(ValueError, match="offset must be >= 0"):
        client.read_file("k", offset=-1, paths=["http://127.0.0.1:1/x"])
    with pytest.raises(ValueError, match="limit must be at least 1"):
        client.list_keys(limit=0)


def test_reads_return_whole_chunks_from_a_node_sending_small_pieces(nodes) -> None:
    """One read per chunk, whatever the socket delivers at a time: the ASGI
    stream mode hops to a thread once per read."""
    node = FakeNode(DATA, trickle=500)
    nodes.append(node)
    client = Client("d", ["127.0.0.1:1"])
    with client.read_file("k", paths=[node.url + "/dev1/f.fid"], size=len(DATA)) as stream:
        sizes = [len(chunk) for chunk in iter(lambda: stream.read(4096), b"")]
    assert sizes == [4096, 4096, len(DATA) - 8192]
    client.close()

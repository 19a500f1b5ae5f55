"""The storage node's HTTP behaviour, checked over real sockets."""

from __future__ import annotations

import hashlib
import http.client
import socket
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest
import urllib3

from storages_mogile.devserver import StorageNode
from storages_mogile.devserver.storagenode import Unsatisfiable, byte_range

from .helpers import http_request, refused

FILE = "/dev1/0/000/000/0000000001.fid"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[StorageNode]:
    node = StorageNode(tmp_path / "node1")
    node.add_device(1)
    node.start()
    yield node
    node.stop()


def put(node: StorageNode, data: bytes, path: str = FILE) -> int:
    status, _, body = http_request("PUT", node.url + path, data)
    assert body == b"<h1>200 - OK</h1>\n"
    return status


def raw(node: StorageNode, request: bytes) -> bytes:
    """Send raw bytes, return everything until the node closes the connection."""
    with socket.create_connection((node.host, node.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_put_then_get_and_head(node: StorageNode) -> None:
    assert put(node, b"0123456789abcdef") == 200
    status, headers, body = http_request("GET", node.url + FILE)
    assert (status, body) == (200, b"0123456789abcdef")
    assert headers["Content-Type"] == "text/plain"
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Length"] == "16"
    assert "ETag" not in headers
    modified = (node.root / FILE.lstrip("/")).stat().st_mtime
    assert headers["Last-Modified"] == formatdate(modified, usegmt=True)
    status, head_headers, body = http_request("HEAD", node.url + FILE)
    assert (status, body, head_headers["Content-Length"]) == (200, b"", "16")


def test_put_creates_directories_and_overwrites(node: StorageNode) -> None:
    path = "/dev1/7/777/777/0007777777.fid"
    assert put(node, b"first", path) == 200
    assert put(node, b"second", path) == 200
    assert http_request("GET", node.url + path)[2] == b"second"


def test_chunked_put_stores_the_decoded_body(node: StorageNode) -> None:
    reply = raw(
        node,
        b"PUT "
        + FILE.encode()
        + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n7\r\n chunks\r\n0\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.0 200 OK\r\n")
    assert http_request("GET", node.url + FILE)[2] == b"hello chunks"


def test_put_without_length_stores_an_empty_file(node: StorageNode) -> None:
    put(node, b"old")
    reply = raw(node, b"PUT " + FILE.encode() + b" HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.0 200 OK\r\n")
    assert http_request("GET", node.url + FILE)[:3:2] == (200, b"")


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        (
            "/dev99/0/000/000/0000000001.fid",
            404,
            b"<h1>404 - Not Found</h1>\nBase directory does not exist",
        ),
        (
            "/foo.fid",
            400,
            b"<h1>400 - Bad request</h1>\nDoes not meet minimum directory requirement",
        ),
        (
            "/dev1/../escape.fid",
            400,
            b"<h1>400 - Bad request</h1>\nDoes not meet minimum directory requirement",
        ),
    ],
)
def test_put_outside_a_device_is_refused(
    node: StorageNode, path: str, status: int, body: bytes
) -> None:
    assert http_request("PUT", node.url + path, b"z")[::2] == (status, body)
    assert not (node.root.parent / "escape.fid").exists()


@pytest.mark.parametrize(
    ("header", "status", "content_range", "body"),
    [
        ("bytes=0-3", 206, "bytes 0-3/16", b"0123"),
        ("bytes=10-", 206, "bytes 10-15/16", b"abcdef"),
        ("bytes=-4", 206, "bytes 12-15/16", b"cdef"),
        ("bytes=-100", 206, "bytes 0-15/16", b"0123456789abcdef"),
        ("bytes=8-100", 206, "bytes 8-15/16", b"89abcdef"),
        ("bytes=100-200", 416, "bytes */16", b""),
        ("bytes=0-1,4-5", 200, None, b"0123456789abcdef"),
    ],
)
def test_ranges(
    node: StorageNode, header: str, status: int, content_range: str | None, body: bytes
) -> None:
    put(node, b"0123456789abcdef")
    got_status, headers, got_body = http_request("GET", node.url + FILE, headers={"Range": header})
    assert (got_status, headers.get("Content-Range"), got_body) == (status, content_range, body)
    assert headers["Content-Length"] == str(len(body))


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 5, None),
        ("bytes=", 5, None),
        ("bytes=3-1", 5, None),
        ("items=0-1", 5, None),
        ("bytes=-2", 5, (3, 4)),
    ],
)
def test_byte_range_parsing(
    header: str | None, size: int, expected: tuple[int, int] | None
) -> None:
    assert byte_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=0-", 0), ("bytes=-0", 5), ("bytes=-3", 0), ("bytes=5-", 5)]
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        byte_range(header, size)


def test_if_modified_since(node: StorageNode) -> None:
    put(node, b"data")
    modified = http_request("HEAD", node.url + FILE)[1]["Last-Modified"]
    assert http_request("GET", node.url + FILE, headers={"If-Modified-Since": modified})[0] == 304
    future = "Fri, 01 Jan 2100 00:00:00 GMT"
    assert http_request("GET", node.url + FILE, headers={"If-Modified-Since": future})[0] == 200


def test_delete_then_missing(node: StorageNode) -> None:
    put(node, b"data")
    assert http_request("DELETE", node.url + FILE)[0] == 204
    assert http_request("DELETE", node.url + FILE)[::2] == (404, b"<h1>404 - Not Found</h1>\n")
    status, headers, body = http_request("HEAD", node.url + FILE)
    assert (status, headers["Content-Length"], body) == (404, "25", b"")


@pytest.mark.parametrize("method", ["OPTIONS", "POST", "MOVE", "PROPFIND"])
def test_other_methods_are_bad_requests(node: StorageNode, method: str) -> None:
    put(node, b"data")
    assert http_request(method, node.url + FILE, b"z")[::2] == (
        400,
        b"<h1>400 - Bad request</h1>\n",
    )


def test_directory_and_usage(node: StorageNode) -> None:
    assert http_request("GET", node.url + "/dev1/")[::2] == (
        200,
        b"<h1>200 - OK</h1>\nDirectory listing disabled",
    )
    status, _, body = http_request("GET", node.url + "/dev1/usage")
    fields = dict(line.split(": ", 1) for line in body.decode().splitlines())
    assert status == 200
    assert {"available", "total", "used", "use", "disk", "time", "device"} <= set(fields)
    assert int(fields["total"]) >= int(fields["available"]) > 0


def test_http11_connections_are_kept_alive_and_pooled(node: StorageNode) -> None:
    put(node, b"data")
    connection = http.client.HTTPConnection(node.host, node.port, timeout=10)
    sockets = []
    try:
        for _ in range(3):
            connection.request("GET", FILE)
            response = connection.getresponse()
            assert response.version == 10  # an HTTP/1.0 status line, as mogstored sends
            assert response.getheader("Connection") == "keep-alive"
            assert response.read() == b"data"
            sockets.append(connection.sock)
    finally:
        connection.close()
    assert sockets[0] is sockets[1] is sockets[2]
    pool = urllib3.HTTPConnectionPool(node.host, node.port, maxsize=1)
    for _ in range(3):
        assert pool.request("GET", FILE).data == b"data"
    assert pool.num_connections == 1


def test_http10_requests_get_connection_close(node: StorageNode) -> None:
    put(node, b"data")
    reply = raw(node, b"GET " + FILE.encode() + b" HTTP/1.0\r\n\r\n")
    assert b"\r\nConnection: close\r\n" in reply
    assert reply.endswith(b"\r\n\r\ndata")


def test_pipelined_requests_are_answered_in_order(node: StorageNode) -> None:
    put(node, b"data")
    request = b"GET " + FILE.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    reply = raw(
        node,
        request + b"HEAD " + FILE.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert reply.count(b"HTTP/1.0 200 OK") == 2
    assert reply.index(b"data") < reply.rindex(b"HTTP/1.0 200 OK")


def test_stop_refuses_and_drops_connections_start_reuses_the_port(node: StorageNode) -> None:
    put(node, b"data")
    connection = http.client.HTTPConnection(node.host, node.port, timeout=10)
    connection.request("GET", FILE)
    connection.getresponse().read()
    port = node.port
    node.stop()
    assert not node.running
    assert refused(node.address)
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        connection.request("GET", FILE)
        connection.getresponse()
    connection.close()
    node.start()
    assert (node.running, node.port) == (True, port)
    assert http_request("GET", node.url + FILE)[2] == b"data"


def test_a_hung_node_accepts_and_answers_nothing_until_resumed(node: StorageNode) -> None:
    put(node, b"data")
    node.hang()
    assert node.hung
    connection = http.client.HTTPConnection(node.host, node.port, timeout=0.5)
    connection.request("GET", FILE)  # connected and sent: as to a stopped process
    with pytest.raises(TimeoutError):
        connection.getresponse()
    connection.close()
    held = http.client.HTTPConnection(node.host, node.port, timeout=10)
    held.request("GET", FILE)
    node.resume()
    assert held.getresponse().read() == b"data"  # the held request goes on
    held.close()


def test_a_hung_node_stalls_a_transfer_under_way(node: StorageNode) -> None:
    data = bytes(64 << 20)  # far more than the sockets' buffers hold
    put(node, data)
    connection = http.client.HTTPConnection(node.host, node.port, timeout=0.5)
    connection.request("GET", FILE)
    response = connection.getresponse()
    received = len(response.read(1 << 20))
    node.hang()
    with pytest.raises(TimeoutError):
        while chunk := response.read(1 << 20):
            received += len(chunk)
    assert received < len(data)
    connection.close()


def test_stopping_a_hung_node_ends_its_held_requests(node: StorageNode) -> None:
    node.hang()
    connection = http.client.HTTPConnection(node.host, node.port, timeout=10)
    connection.request("GET", FILE)
    node.stop()  # returns: the held handler ends instead of serving
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        connection.getresponse()
    connection.close()
    node.start()
    assert not node.hung
    assert http_request("GET", node.url + FILE)[0] == 404


def test_devids_follow_device_directories(tmp_path: Path) -> None:
    node = StorageNode(tmp_path)
    node.add_device(3)
    node.add_device(1)
    assert node.devids == [1, 3]


@pytest.mark.slow
def test_256_mib_streams_through(node: StorageNode) -> None:
    """A 256 MiB upload and download, in blocks on both sides."""
    block = bytes(range(256)) * 4096  # 1 MiB
    blocks = 256
    expected = hashlib.sha256()
    for _ in range(blocks):
        expected.update(block)

    class Source:
        def __init__(self) -> None:
            self.left = blocks

        def read(self, size: int = -1) -> bytes:
            if not self.left:
                return b""
            self.left -= 1
            return block

    connection = http.client.HTTPConnection(node.host, node.port, timeout=60)
    try:
        connection.request(
            "PUT", FILE, body=Source(), headers={"Content-Length": str(blocks * len(block))}
        )
        assert connection.getresponse().read() == b"<h1>200 - OK</h1>\n"
        connection.request("GET", FILE)
        response = connection.getresponse()
        received = hashlib.sha256()
        total = 0
        while chunk := response.read(1 << 20):
            received.update(chunk)
            total += len(chunk)
    finally:
        connection.close()
    assert (total, received.hexdigest()) == (blocks * len(block), expected.hexdigest())


# What one client sends never blocks, exhausts or silently drops a request


@pytest.mark.parametrize("header", [b"-1", b"-0x10", b"zz", b"1" * 40])
def test_a_bad_chunk_size_is_a_400_and_nothing_is_stored(node: StorageNode, header: bytes) -> None:
    put(node, b"previous")
    reply = raw(
        node,
        b"PUT "
        + FILE.encode()
        + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + header
        + b"\r\n"
        + b"x" * 4096,  # the connection stays open: a read to the end would never return
    )
    assert reply.startswith(b"HTTP/1.0 400 ")
    assert http_request("GET", node.url + FILE)[2] == b"previous"


def test_a_range_of_any_length_is_answered(node: StorageNode) -> None:
    put(node, b"0123456789")
    status, _, body = http_request(
        "GET", node.url + FILE, headers={"Range": "bytes=2-" + "9" * 5000}
    )
    assert (status, body) == (206, b"23456789")
    status, _, _ = http_request(
        "GET", node.url + FILE, headers={"Range": "bytes=" + "9" * 5000 + "-"}
    )
    assert status == 416


def test_a_put_below_an_existing_file_is_a_409(node: StorageNode) -> None:
    put(node, b"a file")
    status, _, body = http_request("PUT", node.url + FILE + "/below.fid", b"x")
    assert status == 409 and b"not a directory" in body
    assert http_request("GET", node.url + FILE)[2] == b"a file"

"""Stream mode: Django sends the bytes, answering Range and conditional requests."""

from __future__ import annotations

import os

import pytest
from django.utils.http import http_date

pytestmark = pytest.mark.usefixtures("serving_settings")


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_get_streams_the_stored_bytes_with_headers(client, stored):
    data = os.urandom(3 * 1024 * 1024 + 5)
    name = stored(data, ".png")
    response = client.get(f"/mogilefs/{name}")
    assert response.status_code == 200
    assert response.streaming
    assert body(response) == data
    assert response["Content-Length"] == str(len(data))
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Accept-Ranges"] == "bytes"
    assert response["ETag"].startswith('"') and response["Last-Modified"].endswith("GMT")
    assert "X-REPROXY-URL" not in response and "X-Accel-Redirect" not in response


def test_head_sends_the_headers_without_the_body(client, stored):
    name = stored(b"0123456789", ".txt")
    get = client.get(f"/mogilefs/{name}")
    head = client.head(f"/mogilefs/{name}")
    assert head.status_code == 200
    assert head.content == b""
    for header in ("Content-Length", "Content-Type", "ETag", "Last-Modified", "Accept-Ranges"):
        assert head[header] == get[header], header
    assert head["Content-Length"] == "10"


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-3", 0, 3),
        ("bytes=10-", 10, 15),
        ("bytes=-4", 12, 15),  # the last 4 bytes, which mogstored itself gets wrong
        ("bytes=5-100", 5, 15),
        ("bytes=15-15", 15, 15),
        ("bytes=0000000000000000000000000000003-4", 3, 4),  # leading zeros are no size
        ("bytes=2-" + "9" * 5000, 2, 15),  # past Python's int() digit limit
        ("bytes=-" + "9" * 5000, 0, 15),
    ],
)
def test_single_range_is_a_206(client, stored, header, start, end):
    data = b"0123456789abcdef"
    name = stored(data)
    response = client.get(f"/mogilefs/{name}", HTTP_RANGE=header)
    assert response.status_code == 206
    assert body(response) == data[start : end + 1]
    assert response["Content-Range"] == f"bytes {start}-{end}/16"
    assert response["Content-Length"] == str(end - start + 1)


@pytest.mark.parametrize(
    "header", ["bytes=16-", "bytes=100-200", "bytes=-0", "bytes=" + "9" * 5000 + "-"]
)
def test_unsatisfiable_range_is_a_416(client, stored, header):
    name = stored(b"0123456789abcdef")
    response = client.get(f"/mogilefs/{name}", HTTP_RANGE=header)
    assert response.status_code == 416
    assert response["Content-Range"] == "bytes */16"
    assert response.content == b""


@pytest.mark.parametrize("header", ["bytes=0-1,4-5", "bytes=5-2", "items=0-3", "bytes=x-"])
def test_other_ranges_are_ignored(client, stored, header):
    name = stored(b"0123456789abcdef")
    response = client.get(f"/mogilefs/{name}", HTTP_RANGE=header)
    assert response.status_code == 200
    assert body(response) == b"0123456789abcdef"


def test_range_on_a_large_file_reads_only_the_range(client, stored):
    data = os.urandom(5 * 1024 * 1024)
    name = stored(data)
    response = client.get(f"/mogilefs/{name}", HTTP_RANGE="bytes=4194304-4194403")
    assert response.status_code == 206
    assert body(response) == data[4194304:4194404]


def test_if_none_match_with_the_etag_is_a_304(client, stored):
    name = stored(b"cached")
    etag = client.get(f"/mogilefs/{name}")["ETag"]
    response = client.get(f"/mogilefs/{name}", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304
    assert response["ETag"] == etag
    assert response.content == b""
    assert client.get(f"/mogilefs/{name}", HTTP_IF_NONE_MATCH='"other"').status_code == 200


def test_if_modified_since_is_a_304_until_modified(client, stored):
    name = stored(b"dated")
    modified = client.get(f"/mogilefs/{name}")["Last-Modified"]
    response = client.get(f"/mogilefs/{name}", HTTP_IF_MODIFIED_SINCE=modified)
    assert response.status_code == 304
    assert response["Last-Modified"] == modified
    earlier = http_date(0)
    assert client.get(f"/mogilefs/{name}", HTTP_IF_MODIFIED_SINCE=earlier).status_code == 200


def test_if_match_mismatch_is_a_412(client, stored):
    name = stored(b"x")
    assert client.get(f"/mogilefs/{name}", HTTP_IF_MATCH='"stale"').status_code == 412


def test_etag_changes_when_the_file_is_saved_again(client, storage, stored):
    from django.core.files.base import ContentFile

    name = stored(b"first")
    first = client.get(f"/mogilefs/{name}")["ETag"]
    storage.delete(name)
    storage.save(name, ContentFile(b"second"))
    response = client.get(f"/mogilefs/{name}", HTTP_IF_NONE_MATCH=first)
    assert response.status_code == 200
    assert body(response) == b"second"
    assert response["ETag"] != first


def test_if_range_with_a_stale_etag_sends_the_whole_file(client, stored):
    name = stored(b"0123456789")
    etag = client.get(f"/mogilefs/{name}")["ETag"]
    fresh = client.get(f"/mogilefs/{name}", HTTP_RANGE="bytes=2-3", HTTP_IF_RANGE=etag)
    assert fresh.status_code == 206 and body(fresh) == b"23"
    stale = client.get(f"/mogilefs/{name}", HTTP_RANGE="bytes=2-3", HTTP_IF_RANGE='"old"')
    assert stale.status_code == 200 and body(stale) == b"0123456789"


def test_empty_file(client, stored):
    name = stored(b"")
    response = client.get(f"/mogilefs/{name}")
    assert response.status_code == 200
    assert body(response) == b""
    assert response["Content-Length"] == "0"
    assert client.get(f"/mogilefs/{name}", HTTP_RANGE="bytes=0-").status_code == 416

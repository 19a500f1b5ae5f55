"""Uploads from regular files go to the socket by sendfile, never through Python.

The sources are real files on disk; a source whose ``read()`` fails proves
the bytes did not pass through Python. Stores run against the MogileFS
under test (dev or real); failing destinations are fake nodes.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files import File
from django.core.files.uploadedfile import TemporaryUploadedFile

from storages_mogile.client import Client
from storages_mogile.client.files import UploadSource

from .conftest import Keys
from .fakes import FakeNode
from .test_transfers import closed_args, upload_tracker

CHUNK = 64 * 1024
DATA = os.urandom(5 * CHUNK + 123)


class Unreadable(io.FileIO):
    """A regular file whose bytes cannot be read through Python (``read(0)`` aside)."""

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        raise AssertionError("the upload read the file through Python")

    readinto = readall = read  # type: ignore[assignment]


class Shrunk(io.FileIO):
    """A regular file that says it is ``extra`` bytes longer than it is."""

    extra = 1000

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = super().seek(offset, whence)
        return position + self.extra if whence == io.SEEK_END else position


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source.bin"
    path.write_bytes(DATA)
    return path


@pytest.fixture
def chunked(mogile_target) -> Iterator[Client]:  # type: ignore[no-untyped-def]
    with Client(mogile_target.domain, mogile_target.trackers, chunk_size=CHUNK) as client:
        yield client


def test_a_regular_file_is_sent_by_the_kernel(chunked: Client, keys: Keys, source: Path) -> None:
    with Unreadable(source) as file:
        file.seek(100)  # from the current position
        assert chunked.store_file(keys("sent"), file, "thumb") == len(DATA) - 100
        assert file.tell() == len(DATA)
    assert chunked.get_file_data(keys("sent")) == DATA[100:]


def test_django_files_on_disk_are_sent_by_the_kernel(
    chunked: Client, keys: Keys, source: Path
) -> None:
    with File(Unreadable(source)) as wrapped:
        chunked.store_file(keys("file"), wrapped, "thumb")
    upload = TemporaryUploadedFile("up.bin", "application/octet-stream", len(DATA), None)
    with upload:
        upload.write(DATA)
        upload.seek(0)
        chunked.store_file(keys("upload"), upload, "thumb")
    assert chunked.get_file_data(keys("file")) == DATA
    assert chunked.get_file_data(keys("upload")) == DATA


def test_small_files_spools_and_checksummed_uploads_go_through_python(
    chunked: Client, keys: Keys, source: Path
) -> None:
    """One chunk or less is not worth a connection; a spool in memory must stay
    there; an MD5 needs the bytes."""
    with tempfile.SpooledTemporaryFile(max_size=len(DATA) * 2) as spool:
        spool.write(DATA)
        spool.seek(0)
        chunked.store_file(keys("spool"), spool, "thumb")
        assert not spool._rolled  # fileno() was never asked for
    small = source.with_name("small.bin")
    small.write_bytes(DATA[:CHUNK])
    with Unreadable(small) as file, pytest.raises(AssertionError, match="through Python"):
        chunked.store_file(keys("small"), file, "thumb")
    chunked.verify_checksum = True
    with Unreadable(source) as file, pytest.raises(AssertionError, match="through Python"):
        chunked.store_file(keys("summed"), file, "thumb")
    assert chunked.get_file_data(keys("spool")) == DATA


def test_a_file_shorter_than_it_said_stores_nothing(
    chunked: Client, keys: Keys, source: Path
) -> None:
    chunked.store_content(keys("kept"), b"previous")
    with Shrunk(source) as file, pytest.raises(EOFError, match="did it shrink"):
        chunked.store_file(keys("kept"), file, "thumb")
    assert chunked.get_file_data(keys("kept")) == b"previous"


def test_a_file_longer_than_it_said_stores_nothing(
    chunked: Client, keys: Keys, source: Path
) -> None:
    chunked.store_content(keys("kept"), b"previous")
    with Shrunk(source) as file, pytest.raises(ValueError, match="more than"):
        file.extra = -1000
        chunked.store_file(keys("kept"), file, "thumb")
    assert chunked.get_file_data(keys("kept")) == b"previous"


def test_a_failing_destination_passes_the_sendfile_upload_on(source: Path) -> None:
    broken, good = FakeNode(put_status=507, put_read=CHUNK), FakeNode()
    tracker = upload_tracker([broken.url, good.url])
    try:
        with Client("d", [tracker.address], chunk_size=CHUNK) as client, Unreadable(source) as file:
            assert client.store_file("k", file) == len(DATA)
        assert good.stored == {"/dev2/0/000/000/0000000007.fid": DATA}
        assert closed_args(tracker)["size"] == str(len(DATA))
    finally:
        for closing in (tracker, broken, good):
            closing.close()


class RecordingNodes:
    """Stands in for StorageNodes (no TLS storage node exists here): records the PUT."""

    def put(
        self, url: str, body: Iterator[bytes], length: int | None, *, failover: bool = False
    ) -> None:
        self.sent = b"".join(body)

    def put_file(self, *args: object) -> int:
        raise AssertionError("sendfile to a TLS node")


def test_an_https_node_gets_the_bytes_through_python(source: Path) -> None:
    nodes = RecordingNodes()
    with source.open("rb") as file:
        UploadSource(file, CHUNK, key="k").send_to(nodes, "https://node/dev1/f.fid")  # type: ignore[arg-type]
    assert nodes.sent == DATA

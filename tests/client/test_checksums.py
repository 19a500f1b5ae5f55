"""End-to-end MD5: computed while an upload streams, recorded by the tracker for
classes with a hash type, and checked by reads that ask for it.

Runs on the dev MogileFS and on the real one (the ``md5_class`` fixture
creates the hash-typed class the lab lacks).
"""

from __future__ import annotations

import hashlib
import logging
import os

import pytest

from storages_mogile.client import ChecksumMismatchError, Client
from storages_mogile.client.damaged import DamagedCopies
from tests.conftest import Target

from .conftest import Keys
from .test_damaged_copies import damage
from .test_roundtrip import wait_for

DATA = os.urandom(300_000)
MD5 = hashlib.md5(DATA).hexdigest()


@pytest.fixture
def verifying(mogile_target: Target):
    with Client(mogile_target.domain, mogile_target.trackers, verify_checksum=True) as client:
        yield client


def two_copies(client: Client, key: str) -> list[str]:
    """The key's two paths, once replication made the second copy."""
    wait_for(lambda: client.file_info(key).devcount == 2, timeout=30)
    paths = client.get_paths(key, noverify=True)
    assert len(paths) == 2
    return paths


def with_a_damaged_copy(client: Client, key: str, md5_class: str) -> tuple[str, str]:
    """Store DATA in the hash-typed class, wait for both copies, damage one: (bad, good)."""
    client.store_content(key, DATA, md5_class)
    bad, good = two_copies(client, key)
    damage(bad, flipped(DATA))
    return bad, good


def flipped(data: bytes) -> bytes:
    """Other bytes of the same length: a copy damaged without changing its size."""
    return bytes([data[0] ^ 0xFF]) + data[1:]


def test_a_hash_typed_class_records_the_md5_of_the_streamed_bytes(
    client: Client, keys: Keys, md5_class: str
) -> None:
    assert client.records_checksums(md5_class)
    client.store_content(keys("summed"), DATA, md5_class)
    info = client.file_info(keys("summed"))
    assert info.checksum == f"MD5:{MD5}"
    assert info.md5 == MD5
    assert client.locate(keys("summed")).md5 == MD5


def test_a_class_without_hash_type_records_none(client: Client, keys: Keys) -> None:
    assert not client.records_checksums("avatar")
    client.store_content(keys("plain"), DATA, "avatar")
    assert client.file_info(keys("plain")).checksum is None
    assert client.locate(keys("plain")).md5 is None


def test_replication_of_a_file_without_checksum_records_one(
    client: Client, keys: Keys, md5_class: str
) -> None:
    """Moved into a hash-typed class, a file gets the digest its replica was copied with."""
    client.store_content(keys("moved"), DATA, "thumb")  # one copy, no checksum
    client.update_class(keys("moved"), md5_class)
    assert client.file_info(keys("moved")).checksum in ("MISSING", f"MD5:{MD5}")
    wait_for(lambda: client.file_info(keys("moved")).checksum == f"MD5:{MD5}", timeout=30)


def test_a_damaged_copy_of_the_same_length_is_skipped_by_a_verifying_read(
    client: Client, verifying: Client, keys: Keys, md5_class: str
) -> None:
    bad, good = with_a_damaged_copy(client, keys("damaged"), md5_class)
    # Without verification the damaged copy is read as if it were the file.
    with client.read_file(keys("damaged"), paths=[bad, good], size=len(DATA)) as stream:
        assert stream.readall() != DATA
    with client.read_file(keys("damaged"), paths=[bad, good], size=len(DATA), md5=MD5) as stream:
        assert stream.readall() == DATA
        assert stream.url == good
    for _ in range(10):  # the tracker gives the paths in any order
        assert verifying.get_file_data(keys("damaged")) == DATA


def test_a_streamed_read_of_a_damaged_copy_ends_in_an_error_before_its_last_bytes(
    client: Client, keys: Keys, md5_class: str
) -> None:
    bad, good = with_a_damaged_copy(client, keys("streamed"), md5_class)
    read = b""
    stream = client.read_file(keys("streamed"), paths=[bad, good], size=len(DATA), md5=MD5)
    with stream, pytest.raises(ChecksumMismatchError) as caught:
        while chunk := stream.read(65536):
            read += chunk
    assert 0 < len(read) < len(DATA)  # a damaged copy is never delivered whole
    assert caught.value.url == bad
    actual = hashlib.md5(flipped(DATA)).hexdigest()
    assert (caught.value.expected, caught.value.actual) == (MD5, actual)


def test_every_copy_damaged_raises(
    client: Client, verifying: Client, keys: Keys, md5_class: str
) -> None:
    client.store_content(keys("lost"), DATA, md5_class)
    paths = two_copies(client, keys("lost"))
    for path in paths:
        damage(path, flipped(DATA))
    stream = client.read_file(keys("lost"), paths=paths, size=len(DATA), md5=MD5)
    with stream, pytest.raises(ChecksumMismatchError):
        stream.readall()
    with pytest.raises(ChecksumMismatchError):
        verifying.get_file_data(keys("lost"))


def test_partial_and_seeking_reads_are_not_verified(
    client: Client, keys: Keys, md5_class: str
) -> None:
    """Only a whole read can be checked: a range or a read after a seek is served as is."""
    bad, _ = with_a_damaged_copy(client, keys("ranged"), md5_class)
    with client.read_file(keys("ranged"), paths=[bad], size=len(DATA), md5=MD5) as stream:
        stream.seek(10)
        assert stream.read() == DATA[10:]
    with client.read_file(keys("ranged"), paths=[bad], offset=1, md5=MD5) as stream:
        assert stream.read() == DATA[1:]


def test_a_one_chunk_read_falls_through_a_damaged_copy_before_any_byte(
    client: Client, keys: Keys, md5_class: str
) -> None:
    """Read in one call (one chunk of the stream view), nothing of the damaged copy
    is handed out, so the read goes on at the next copy instead of failing."""
    bad, good = with_a_damaged_copy(client, keys("one-chunk"), md5_class)
    stream = client.read_file(keys("one-chunk"), paths=[bad, good], size=len(DATA), md5=MD5)
    with stream:
        assert stream.read(len(DATA) + 1) == DATA
        assert stream.url == good
        assert stream.read(1) == b""


def test_a_damaged_copy_is_logged_once_and_read_last_afterwards(
    client: Client, keys: Keys, md5_class: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = keys("logged")
    bad, good = with_a_damaged_copy(client, key, md5_class)
    fid = client.file_info(key).fid
    found: list[str] = []
    with caplog.at_level(logging.ERROR, logger="storages_mogile.client"):
        for _ in range(3):
            reader = client.read_file(
                key, paths=[bad, good], size=len(DATA), md5=MD5, on_damaged=found.append
            )
            with reader:
                assert reader.readall() == DATA
    assert found == [bad]  # the later reads went to the intact copy first
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert repr(key) in message and f"fid {fid}" in message and bad in message
    assert client.locate(key).paths[-1] == bad


def test_damaged_copies_lists_the_copies_that_differ_from_the_md5(
    client: Client, keys: Keys, md5_class: str
) -> None:
    bad, _ = with_a_damaged_copy(client, keys("audited"), md5_class)
    assert client.damaged_copies(keys("audited")) == [bad]
    client.store_content(keys("intact"), DATA, md5_class)
    two_copies(client, keys("intact"))
    assert client.damaged_copies(keys("intact")) == []
    client.store_content(keys("unsummed"), DATA, "avatar")  # nothing recorded to check
    assert client.damaged_copies(keys("unsummed")) == []


def test_damaged_copies_counts_a_copy_of_another_length(
    client: Client, keys: Keys, md5_class: str
) -> None:
    client.store_content(keys("short"), DATA, md5_class)
    bad, _ = two_copies(client, keys("short"))
    damage(bad, DATA[:-1])
    assert client.damaged_copies(keys("short")) == [bad]


def test_the_damaged_copies_of_a_process_are_bounded_and_go_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(DamagedCopies, "limit", 2)
    damaged = DamagedCopies()
    assert damaged.add("http://n/1.fid") and not damaged.add("http://n/1.fid")
    assert damaged.last(["http://n/1.fid", "http://n/2.fid"]) == [
        "http://n/2.fid",
        "http://n/1.fid",
    ]
    damaged.add("http://n/2.fid")
    damaged.add("http://n/3.fid")  # the oldest is forgotten
    assert "http://n/1.fid" not in damaged and "http://n/3.fid" in damaged

"""The client against a MogileFS over real sockets (the dev cluster by default).

Run against a real MogileFS with MOGILEFS_TEST_TRACKERS/MOGILEFS_TEST_DOMAIN
(see conftest.py).
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from storages_mogile.client import (
    Client,
    KeyExistsError,
    KeyNotUTF8Error,
    NoPathsError,
    UnknownClassError,
    UnknownDomainError,
    UnknownKeyError,
)
from tests.conftest import Target

from .conftest import Keys

MIB = 1 << 20

NASTY_KEYS = [
    "with space",
    "a+b",
    "100%",
    "%41",
    "a&b=c",
    "eq=sign",
    "ünï©ødé 日本",
    "line\nbreak",
    "cr\rlf\r\n",
    "tab\there",
    "~!*()'\"<>`;@",
    "back\\slash",
    "//double//slash/",
    "..",
]

# Another program's key: bytes that are not UTF-8, as surrogate escapes.
RAW_KEY = b"raw \xff\xfe bytes".decode("utf-8", "surrogateescape")


def wait_for(condition, timeout: float = 15.0, interval: float = 0.1) -> None:
    """Poll until ``condition()`` is true (replication and deletion are asynchronous)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def write_random_file(path: Path, size: int) -> str:
    """Fill ``path`` with ``size`` random bytes; returns their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, 4 * MIB))
            digest.update(block)
            out.write(block)
            remaining -= len(block)
    return digest.hexdigest()


def stream_digest(stream: io.RawIOBase) -> tuple[str, int]:
    """SHA-256 and length of everything read from ``stream``, 1 MiB at a time."""
    digest = hashlib.sha256()
    total = 0
    buffer = bytearray(MIB)
    while count := stream.readinto(buffer):
        digest.update(memoryview(buffer)[:count])
        total += count
    return digest.hexdigest(), total


@pytest.mark.parametrize("size", [0, 1, MIB])
def test_store_and_read_back(client: Client, keys: Keys, tmp_path: Path, size: int) -> None:
    source = tmp_path / "source"
    digest = write_random_file(source, size)
    with source.open("rb") as file:
        assert client.store_file(keys("file"), file, "thumb") == size
    with client.read_file(keys("file")) as stream:
        assert stream.size == size
        assert stream_digest(stream) == (digest, size)
    assert client.file_info(keys("file")).length == size


@pytest.mark.slow
def test_store_and_read_back_64_mib(client: Client, keys: Keys, tmp_path: Path) -> None:
    source = tmp_path / "source"
    digest = write_random_file(source, 64 * MIB)
    with source.open("rb") as file:
        assert client.store_file(keys("big"), file, "thumb") == 64 * MIB
    with client.read_file(keys("big")) as stream:
        assert stream_digest(stream) == (digest, 64 * MIB)


def test_content_and_new_file(client: Client, keys: Keys) -> None:
    assert client.store_content(keys("content"), b"hello") == 5
    assert client.get_file_data(keys("content")) == b"hello"
    with client.new_file(keys("new"), "thumb") as file:
        file.write(b"written ")
        file.write(b"in parts")
    assert client.get_file_data(keys("new")) == b"written in parts"
    with pytest.raises(ZeroDivisionError), client.new_file(keys("aborted")) as file:
        file.write(b"partial")
        raise ZeroDivisionError
    with pytest.raises(UnknownKeyError):
        client.file_info(keys("aborted"))


def test_storing_over_a_key_replaces_it(client: Client, keys: Keys) -> None:
    client.store_content(keys("k"), b"first version")
    client.store_content(keys("k"), b"second")
    assert client.get_file_data(keys("k")) == b"second"
    assert client.file_info(keys("k")).length == 6


def test_concurrent_stores_over_one_key_all_succeed(client: Client, keys: Keys) -> None:
    """Writers overwriting one key at once: every store returns, and the key
    holds one of their files, whole. On SQLite, mogilefsd answers ``ERR
    failure`` to a create_close whose old file another close was deleting
    (file_to_delete2's unique fid), having consumed the upload: that store
    starts over instead of failing."""
    client.store_content(keys("k"), b"first")
    versions = [b"version %d " % index * (index + 1) for index in range(8)]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(5):
            stored = list(pool.map(lambda data: client.store_content(keys("k"), data), versions))
            assert stored == [len(data) for data in versions]
            assert client.get_file_data(keys("k")) in versions


@pytest.mark.parametrize("name", NASTY_KEYS, ids=repr)
def test_any_key_round_trips(client: Client, keys: Keys, name: str) -> None:
    key = keys(name)
    client.store_content(key, name.encode("utf-8", "surrogateescape"), "thumb")
    assert client.get_file_data(key) == name.encode("utf-8", "surrogateescape")
    assert client.file_info(key).key == key
    assert client.list_keys(prefix=keys()) == [key]
    client.delete(key)
    with pytest.raises(UnknownKeyError):
        client.get_paths(key)


def test_a_raw_bytes_key_round_trips_or_is_refused_for_its_bytes(
    client: Client, keys: Keys
) -> None:
    """A tracker on SQLite or PostgreSQL stores any bytes; one on MariaDB/MySQL
    (strict mode) refuses bytes that are not UTF-8: the error says so, and
    nothing stored is lost."""
    client.store_content(keys("kept"), b"kept")
    key, data = keys(RAW_KEY), RAW_KEY.encode("utf-8", "surrogateescape")
    try:
        client.store_content(key, data, "thumb")
    except KeyNotUTF8Error as exc:
        assert exc.key == key and "not valid UTF-8" in str(exc)
        with pytest.raises(KeyNotUTF8Error, match="not valid UTF-8"):
            client.rename(keys("kept"), key)
        assert client.list_keys(prefix=keys()) == [keys("kept")]
        assert client.get_file_data(keys("kept")) == b"kept"
        return
    assert client.get_file_data(key) == data
    assert client.list_keys(prefix=keys()) == [keys("kept"), key]
    client.delete(key)
    client.rename(keys("kept"), key)
    assert client.get_file_data(key) == b"kept"


def test_a_key_holding_nul(client: Client, keys: Keys) -> None:
    """SQLite and MariaDB keep a NUL in a key; PostgreSQL cuts every key it is
    given at NUL, so ``nul\\0byte`` and ``nul\\0other`` are the key ``nul``
    there (the storage refuses names holding NUL)."""
    key = keys("nul\0byte")
    client.store_content(key, b"nul")
    stored = client.list_keys(prefix=keys())
    if stored == [keys("nul")]:  # cut at NUL
        assert client.file_info(keys("nul\0other")).fid == client.file_info(key).fid
    else:
        assert stored == [key]
        assert client.file_info(key).key == key
    assert client.get_file_data(key) == b"nul"
    client.delete(key)
    assert client.list_keys(prefix=keys()) == []


def test_ranged_reads(client: Client, keys: Keys) -> None:
    data = bytes(range(256)) * 64
    client.store_content(keys("r"), data)
    for offset, length in [(0, 1), (10, 100), (16000, None), (len(data) - 1, 5), (0, 0)]:
        with client.read_file(keys("r"), offset=offset, length=length) as stream:
            end = None if length is None else offset + length
            assert stream.read() == data[offset:end], (offset, length)
            assert stream.size == len(data)
    for offset in (len(data), len(data) + 10):
        with client.read_file(keys("r"), offset=offset) as stream:
            assert stream.read() == b""
    with io.BufferedReader(client.read_file(keys("r"))) as buffered:
        assert buffered.read(3) == data[:3]
        assert buffered.seek(300) == 300
        assert buffered.read(2) == data[300:302]


def test_stat(client: Client, keys: Keys) -> None:
    client.store_content(keys("s"), b"12345")
    stat = client.stat(keys("s"))
    assert stat.length == 5
    assert stat.url in client.get_paths(keys("s"))
    assert stat.last_modified is not None and stat.last_modified.tzinfo is not None
    with pytest.raises(NoPathsError):
        client.stat(keys("s"), paths=[stat.url.replace(".fid", "9.fid")])


def test_iter_keys_pages_past_1000(client: Client, keys: Keys) -> None:
    names = [keys(f"{index:04d}") for index in range(1005)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: client.store_content(key, b""), names))
    assert client.list_keys(prefix=keys()) == names[:1000]  # one page: the tracker's maximum
    assert list(client.iter_keys(prefix=keys())) == names
    assert list(client.iter_keys(prefix=keys(), page_size=300)) == names
    assert client.list_keys(prefix=keys(), after=names[-1]) == []


def test_iter_keys_with_a_prefix_that_is_a_regex(client: Client, keys: Keys) -> None:
    # The tracker checks "after" against the prefix as a Perl regex.
    names = [keys(f"img(1)+[x]/{index}") for index in range(5)]
    for name in [*names, keys("img(1)+[y]"), keys("img(1)+[x]0")]:
        client.store_content(name, b"")
    assert list(client.iter_keys(prefix=keys("img(1)+[x]/"), page_size=2)) == names


def test_rename(client: Client, keys: Keys) -> None:
    client.store_content(keys("from"), b"data")
    client.store_content(keys("taken"), b"other")
    client.rename(keys("from"), keys("to"))
    assert client.get_file_data(keys("to")) == b"data"
    with pytest.raises(UnknownKeyError):
        client.file_info(keys("from"))
    with pytest.raises(KeyExistsError):
        client.rename(keys("to"), keys("taken"))
    with pytest.raises(UnknownKeyError):
        client.rename(keys("from"), keys("elsewhere"))


def test_update_class(client: Client, keys: Keys) -> None:
    client.store_content(keys("c"), b"data", "thumb")
    assert client.file_info(keys("c")).cls == "thumb"
    client.update_class(keys("c"), "avatar")
    assert client.file_info(keys("c")).cls == "avatar"
    with pytest.raises(UnknownClassError):
        client.update_class(keys("c"), "no-such-class")
    with pytest.raises(UnknownKeyError):  # the tracker says invalid_key here
        client.update_class(keys("missing"), "thumb")


def test_delete(client: Client, keys: Keys) -> None:
    client.store_content(keys("d"), b"data")
    client.delete(keys("d"))
    with pytest.raises(UnknownKeyError):
        client.get_paths(keys("d"))
    with pytest.raises(UnknownKeyError):
        client.delete(keys("d"))


def test_unknown_key_domain_and_class(client: Client, mogile_target: Target, keys: Keys) -> None:
    with pytest.raises(UnknownKeyError) as caught:
        client.get_paths(keys("missing"))
    assert keys("missing") in str(caught.value)
    with pytest.raises(FileNotFoundError):
        client.read_file(keys("missing"))
    with pytest.raises(UnknownClassError):
        client.store_content(keys("x"), b"data", "no-such-class")
    elsewhere = Client("no-such-domain-" + keys().split("/")[1], mogile_target.trackers)
    with pytest.raises(UnknownDomainError, match="no-such-domain"):
        elsewhere.file_info("k")
    with pytest.raises(UnknownDomainError):
        elsewhere.store_content("k", b"data")


def test_replication_reaches_two_copies(client: Client, keys: Keys) -> None:
    client.store_content(keys("avatar"), b"replicate me", "avatar")
    assert 1 <= len(client.get_paths(keys("avatar"))) <= 2  # one until replication
    wait_for(lambda: client.file_info(keys("avatar")).devcount == 2)
    paths = client.get_paths(keys("avatar"))
    assert len(paths) == 2
    for path in paths:
        with client.read_file(keys("avatar"), paths=[path]) as stream:
            assert stream.read() == b"replicate me"


def test_checksum_verified_store(mogile_target: Target, keys: Keys) -> None:
    client = Client(mogile_target.domain, mogile_target.trackers, verify_checksum=True)
    assert client.store_content(keys("sum"), b"checked") == 7
    assert client.get_file_data(keys("sum")) == b"checked"


class LyingSize(io.BytesIO):
    """A seekable file whose end, as seek(0, 2) reports it, is ``shortfall`` bytes short."""

    def __init__(self, data: bytes, shortfall: int) -> None:
        super().__init__(data)
        self.shortfall = shortfall

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = super().seek(offset, whence)
        if whence == io.SEEK_END:
            position = super().seek(position - self.shortfall)
        return position


@pytest.mark.parametrize("shortfall", [1, 1000])
def test_a_file_longer_than_its_reported_size_is_not_stored(
    client: Client, keys: Keys, shortfall: int
) -> None:
    client.store_content(keys("k"), b"previous")
    with pytest.raises(ValueError, match="more than"):
        client.store_file(keys("k"), LyingSize(b"x" * 5000, shortfall))
    assert client.get_file_data(keys("k")) == b"previous"


def test_listing_past_a_page_of_keys_that_differ_only_in_case(client: Client, keys: Keys) -> None:
    """Trackers on SQLite match list_keys prefixes case-insensitively, and refuse an
    ``after`` that does not match the prefix case-sensitively (``after_mismatch``)."""
    upper = [keys(f"CASE/{index:04d}") for index in range(1001)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: client.store_content(key, b"."), upper))
    client.store_content(keys("case/mine.txt"), b"mine")
    client.store_content(keys("case/"), b"the prefix itself")
    assert list(client.iter_keys(keys("case/"))) == [keys("case/"), keys("case/mine.txt")]
    assert list(client.iter_keys(keys("CASE/"))) == upper
    assert list(client.iter_keys(keys("CASE/"), page_size=7)) == upper

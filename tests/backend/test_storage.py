"""MogileFSStorage against the dev MogileFS, over real sockets."""

from __future__ import annotations

import gc
import io
import multiprocessing
import os
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
import urllib3
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile, File

from storages_mogile import mogile_storage
from storages_mogile.backends.mogile import MAX_KEY_BYTES, MogileFSStorage
from storages_mogile.client.errors import UnknownClassError

pytestmark = pytest.mark.usefixtures("mogile_settings")


@pytest.fixture
def storage() -> MogileFSStorage:
    return MogileFSStorage()


@pytest.fixture
def name() -> str:
    return f"backend/{uuid.uuid4().hex}.bin"


class OneShotStream(io.RawIOBase):
    """A readable stream that cannot seek and counts the largest read asked of it."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.largest_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self.largest_read = max(self.largest_read, len(buffer))
        return self._data.readinto(buffer)


def test_save_streams_and_open_reads_back(storage, name):
    data = os.urandom(3 * 1024 * 1024 + 17)
    stream = OneShotStream(data)
    saved = storage.save(name, File(stream, name="upload"))
    assert saved == name
    assert stream.largest_read <= 1024 * 1024 * 2  # read in chunks, never whole
    with storage.open(name) as handle:
        assert handle.read() == data
    assert storage.size(name) == len(data)


def test_save_keeps_the_class(storage, name, mogile_cluster):
    avatar = mogile_storage(klass="avatar")
    avatar.save(name, ContentFile(b"face"))
    assert avatar.client.file_info(avatar.key_for(name)).cls == "avatar"
    assert storage.client.file_info(storage.key_for(name)).cls == "avatar"


def test_unknown_class_is_a_typed_error_and_nothing_is_stored(name):
    with pytest.raises(UnknownClassError):
        mogile_storage(klass="no-such-class").save(name, ContentFile(b"x"))
    assert not MogileFSStorage().exists(name)


def test_collision_gets_an_alternative_name(storage, name):
    first = storage.save(name, ContentFile(b"one"))
    second = storage.save(name, ContentFile(b"two"))
    assert first == name and second != name
    assert storage.open(first).read() == b"one"
    assert storage.open(second).read() == b"two"


def test_overwrite_replaces_in_place(name):
    storage = MogileFSStorage(file_overwrite=True)
    storage.save(name, ContentFile(b"old"))
    assert storage.save(name, ContentFile(b"new")) == name
    assert storage.open(name).read() == b"new"


def test_read_mode_seeks_by_ranged_reads(storage, name):
    data = bytes(range(256)) * 4096
    storage.save(name, ContentFile(data))
    with storage.open(name, "rb") as handle:
        handle.seek(1000)
        assert handle.read(10) == data[1000:1010]
        handle.seek(-5, io.SEEK_END)
        assert handle.read() == data[-5:]
        assert handle.tell() == len(data)
        handle.seek(0)
        assert b"".join(handle.chunks(chunk_size=65536)) == data


def test_text_mode_reads_and_writes_utf8(storage, name):
    with storage.open(name, "w") as handle:
        handle.write("grüße\n")
    with storage.open(name, "r") as handle:
        assert handle.read() == "grüße\n"


def test_write_mode_stores_on_close_only(storage, name):
    storage.save(name, ContentFile(b"previous"))
    handle = storage.open(name, "wb")
    handle.write(b"next ")
    handle.write(b"version")
    assert storage.open(name).read() == b"previous"  # not stored yet
    handle.close()
    assert storage.open(name).read() == b"next version"


def test_missing_file(storage):
    with pytest.raises(FileNotFoundError):
        storage.open("backend/missing.bin")
    with pytest.raises(FileNotFoundError):
        storage.size("backend/missing.bin")
    assert not storage.exists("backend/missing.bin")
    storage.delete("backend/missing.bin")  # not an error


def test_exists_and_delete(storage, name):
    storage.save(name, ContentFile(b"x"))
    assert storage.exists(name)
    storage.delete(name)
    assert not storage.exists(name)


def test_url_is_prefix_plus_quoted_name(storage):
    assert storage.url("a dir/ünï & co.png") == "/mogilefs/a%20dir/%C3%BCn%C3%AF%20%26%20co.png"


def test_listdir_splits_at_slash(storage):
    base = f"ls-{uuid.uuid4().hex}"
    for key in ("a.txt", "b.txt", "sub/c.txt", "sub/deeper/d.txt", "other/e.txt"):
        storage.save(f"{base}/{key}", ContentFile(b"."))
    assert storage.listdir(base) == (["other", "sub"], ["a.txt", "b.txt"])
    assert storage.listdir(f"{base}/sub/") == (["deeper"], ["c.txt"])


def test_listdir_ignores_keys_matched_only_case_insensitively(storage):
    base = f"case-{uuid.uuid4().hex}"
    storage.save(f"{base}/lower.txt", ContentFile(b"."))
    storage.save(f"{base.upper()}/UPPER.txt", ContentFile(b"."))
    assert storage.listdir(base) == ([], ["lower.txt"])


def test_key_prefix_namespaces_keys(name):
    """Under the test's own prefix (the pytest plugin's), then the domain's name."""
    storage = MogileFSStorage(key_prefix="site-a/")
    storage.save(name, ContentFile(b"x"))
    key = storage.key_for(name)
    assert key.startswith("test-") and key.endswith(f"/testdomain/site-a/{name}")
    assert storage.client.file_info(key).length == 1
    assert storage.url(name) == f"/mogilefs/{name}"


def test_modified_time_comes_from_the_storage_node(storage, name, settings):
    storage.save(name, ContentFile(b"x"))
    modified = storage.get_modified_time(name)
    assert modified.tzinfo is not None
    assert abs((datetime.now(timezone.utc) - modified).total_seconds()) < 600
    settings.USE_TZ = False
    assert storage.get_modified_time(name).tzinfo is None


def test_path_is_not_supported(storage, name):
    with pytest.raises(NotImplementedError):
        storage.path(name)


@pytest.mark.parametrize("bad", ["../escape.txt", "a/../../b.txt", "/abs/path.txt"])
def test_traversal_and_absolute_names_are_rejected(storage, bad):
    with pytest.raises(SuspiciousFileOperation):
        storage.save(bad, ContentFile(b"x"))
    with pytest.raises(SuspiciousFileOperation):
        storage.open(bad)


def test_long_names_are_truncated_to_255_utf8_bytes(storage):
    name = "long/" + "ü" * 200 + ".txt"  # 405 bytes as UTF-8
    saved = storage.save(name, ContentFile(b"x"))
    assert saved.endswith(".txt") and saved.startswith("long/ü")
    assert len(saved.encode()) <= MAX_KEY_BYTES
    again = storage.save(name, ContentFile(b"y"))  # collision: alternative name, still fits
    assert again != saved and len(again.encode()) <= MAX_KEY_BYTES
    with pytest.raises(SuspiciousFileOperation, match="255 bytes"):
        storage.open(name)


def test_storages_with_the_same_configuration_share_one_client():
    assert mogile_storage(klass="avatar").client is mogile_storage(klass="thumb").client


def test_binary_write_mode_refuses_text(storage, name):
    handle = storage.open(name, "wb")
    with pytest.raises(TypeError, match="binary mode"):
        handle.write("text")
    handle.close()
    assert not storage.exists(name)  # the refused write stored nothing


def test_a_closed_file_reopens_from_mogilefs_not_from_a_local_file(
    storage, name, tmp_path, monkeypatch
):
    storage.save(name, ContentFile(b"stored"))
    handle = storage.open(name)
    assert handle.read() == b"stored"
    handle.close()
    monkeypatch.chdir(tmp_path)  # a local file of the same name, which File.open() would take
    (tmp_path / name).parent.mkdir(parents=True)
    (tmp_path / name).write_bytes(b"local disk")
    with handle.open() as reopened:
        assert reopened.read() == b"stored"
    with handle.open("r") as reopened:
        assert reopened.read() == "stored"


def test_an_error_inside_a_write_block_keeps_the_stored_version(storage, name):
    storage.save(name, ContentFile(b"complete version"))
    with pytest.raises(RuntimeError, match="failed half-way"), storage.open(name, "wb") as handle:
        handle.write(b"half")
        raise RuntimeError("failed half-way")
    assert handle.closed
    assert storage.open(name).read() == b"complete version"


def test_text_content_is_encoded_through_a_spool_that_is_closed(name):
    storage = MogileFSStorage(max_memory_size=4)  # the UTF-8 spool rolls over to disk
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        storage.save(name, ContentFile("text longer than four bytes"))
        gc.collect()
    assert [str(warning.message) for warning in caught] == []
    assert storage.open(name).read() == b"text longer than four bytes"


def test_nul_in_a_name_is_refused_everywhere(storage, name):
    """A tracker on PostgreSQL cuts keys at NUL: ``a.txt\\0.png`` would be ``a.txt``."""
    storage.save(name, ContentFile(b"original"))
    nul_name = name + "\0.png"
    calls = {
        "save": lambda: storage.save(nul_name, ContentFile(b"intruder")),
        "open": lambda: storage.open(nul_name),
        "exists": lambda: storage.exists(nul_name),
        "size": lambda: storage.size(nul_name),
        "delete": lambda: storage.delete(nul_name),
        "url": lambda: storage.url(nul_name),
        "listdir": lambda: storage.listdir(nul_name),
        "get_available_name": lambda: storage.get_available_name(nul_name),
        "get_modified_time": lambda: storage.get_modified_time(nul_name),
        "get_paths": lambda: storage.get_paths(nul_name),
    }
    for method, call in calls.items():
        with pytest.raises(SuspiciousFileOperation, match="NUL"):
            call()
            pytest.fail(f"{method} accepted a name holding NUL")
    assert storage.open(name).read() == b"original"


def test_a_name_that_is_not_utf8_works_with_every_method(storage):
    """Another program stored raw bytes; listdir() hands them out as surrogate escapes."""
    base = f"raw-{uuid.uuid4().hex}"
    raw_name = base + "/" + b"caf\xe9.txt".decode("utf-8", "surrogateescape")
    storage.client.store_content(storage.key_prefix + raw_name, b"latin-1 name")
    (name,) = storage.listdir(base)[1]
    name = f"{base}/{name}"
    assert name == raw_name
    assert storage.exists(name)
    assert storage.size(name) == len(b"latin-1 name")
    with storage.open(name) as opened:
        assert opened.read() == b"latin-1 name"
    assert storage.get_modified_time(name)
    assert storage.get_available_name(name) != name
    with pytest.raises(ValueError, match="not UTF-8"):
        storage.url(name)  # Django routes str paths: no URL can name these bytes
    assert storage.save(name + ".copy", ContentFile(b"copy")) == name + ".copy"
    storage.delete(name + ".copy")
    storage.delete(name)
    assert not storage.exists(name)


def _save_in_a_process(name: str, index: int, barrier, results) -> None:  # type: ignore[no-untyped-def]
    """In a forked child: 8 threads save ``name`` at once, after the other process is ready."""
    from concurrent.futures import ThreadPoolExecutor

    storage = MogileFSStorage()

    def save(thread: int) -> tuple[bytes, str]:
        data = b"process %d thread %d " % (index, thread) * 100
        return data, storage.save(name, ContentFile(data))

    barrier.wait()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results.put(list(pool.map(save, range(8))))


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_concurrent_saves_from_two_processes_keep_every_file(storage):
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    name = f"race/{uuid.uuid4().hex}/same.txt"
    processes = [
        context.Process(target=_save_in_a_process, args=(name, index, barrier, results))
        for index in range(2)
    ]
    for process in processes:
        process.start()
    saved = [pair for _ in processes for pair in results.get(timeout=120)]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert len({name for _, name in saved}) == 16
    for data, saved_name in saved:
        assert storage.open(saved_name).read() == data


def test_a_damaged_copy_is_never_read_short(storage, name):
    """One of two copies truncated on its node: open().read() never returns it."""
    data = os.urandom(1_000_000)
    storage.save(name, ContentFile(data))  # default class: two copies
    key = storage.key_for(name)
    deadline = time.monotonic() + 30
    while len(paths := storage.client.get_paths(key, noverify=True)) < 2:
        assert time.monotonic() < deadline, "not replicated within 30 s"
        time.sleep(0.05)
    assert urllib3.request("PUT", paths[0], body=b"x" * 1000).status == 200
    short = 0
    for _ in range(200):
        with storage.open(name) as opened:
            short += opened.read() != data
    assert short == 0


def test_listdir_past_a_page_of_names_that_differ_only_in_case(storage):
    base = f"listing-{uuid.uuid4().hex}"
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(lambda i: storage.save(f"{base}/CASE/{i:04d}", ContentFile(b".")), range(1001))
        )
    storage.save(f"{base}/case/mine.txt", ContentFile(b"mine"))
    assert storage.listdir(f"{base}/case") == ([], ["mine.txt"])
    assert len(storage.listdir(f"{base}/CASE")[1]) == 1001
    assert storage.listdir(base) == (["CASE", "case"], [])

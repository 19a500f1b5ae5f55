"""The async half of the Storage contract: ``asave``, ``aopen``, ``aexists`` and the rest.

Django's ``Storage`` has no async methods; a backend that offers them
(``MogileFSStorage`` does) must give the answers and raise the errors of its
sync methods. ``StorageContract`` includes these tests: each runs when the
storage has the methods it uses, and is skipped, naming them, otherwise.
Each test runs in an event loop of its own (``asyncio.run``), which a
storage with an ``aclose()`` coroutine is asked to clean up after.
"""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.core.files.storage import Storage

from storages_mogile.testing.capabilities import Capabilities
from storages_mogile.testing.content import LARGE_SIZE, MIB, SOURCES, TEXT, binary_payload
from storages_mogile.testing.stored import StoredFiles

T = TypeVar("T")

#: Names every save must refuse (a subset of the sync contract's UNSAFE_NAMES).
UNSAFE_NAMES = ["../escape.txt", "nested/../../escape.txt", "/absolute.txt", "", "nested/"]
#: Saves of one name at once, from tasks of one loop.
CONCURRENT_SAVES = 16


def run(storage: Storage, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``work()`` in an event loop of its own, then the storage's ``aclose()`` in that loop."""

    async def main() -> T:
        try:
            return await work()
        finally:
            close = getattr(storage, "aclose", None)
            if close is not None:
                await close()

    return asyncio.run(main())


def require(storage: Storage, *methods: str) -> Any:
    """The storage, as an object with the async ``methods``; skips without them."""
    missing = [method for method in methods if not callable(getattr(storage, method, None))]
    if missing:
        pytest.skip(f"{type(storage).__name__} has no {', '.join(missing)}")
    return storage


async def aread_back(storage: Any, name: str) -> bytes:
    """The whole content of ``name``, read through ``aopen()`` chunk by chunk."""
    async with await storage.aopen(name, "rb") as stored_file:
        return b"".join([chunk async for chunk in stored_file])


class AsyncStorageContract:
    """Tests of a storage's async methods against its sync ones (mixed into StorageContract)."""

    capabilities: ClassVar[Capabilities] = Capabilities()

    def test_async_exists_size_delete(self, storage: Storage, stored: StoredFiles) -> None:
        astorage = require(storage, "aexists", "asize", "adelete")
        name = stored.save("async-lifecycle.bin", ContentFile(b"12345"))

        async def work() -> tuple[bool, int, bool]:
            found, size = await astorage.aexists(name), await astorage.asize(name)
            await astorage.adelete(name)
            return found, size, await astorage.aexists(name)

        assert run(storage, work) == (True, 5, False)
        assert not storage.exists(name)

    def test_async_answers_for_a_missing_file(self, storage: Storage, stored: StoredFiles) -> None:
        astorage = require(storage, "aexists", "asize", "adelete", "aopen")
        name = stored.name("async-missing.bin")

        async def work() -> bool:
            await astorage.adelete(name)  # quiet, as delete()
            with pytest.raises(FileNotFoundError):
                await astorage.asize(name)
            with pytest.raises(FileNotFoundError):
                await astorage.aopen(name)
            return await astorage.aexists(name)

        assert run(storage, work) is False

    def test_async_delete_needs_a_name(self, storage: Storage) -> None:
        astorage = require(storage, "adelete")
        with pytest.raises(ValueError):
            run(storage, lambda: astorage.adelete(""))

    def test_async_open_reads_what_was_saved(self, storage: Storage, stored: StoredFiles) -> None:
        astorage = require(storage, "aopen")
        data = binary_payload(LARGE_SIZE, seed=5)
        name = stored.save("async-large.bin", ContentFile(data))

        async def work() -> tuple[bytes, list[bytes], int]:
            whole = await aread_back(astorage, name)
            async with await astorage.aopen(name) as stored_file:
                pieces = []
                while piece := await stored_file.read(MIB + 7):
                    pieces.append(piece)
                return whole, pieces, stored_file.size

        whole, pieces, size = run(storage, work)
        assert whole == data and size == LARGE_SIZE
        assert all(len(piece) == MIB + 7 for piece in pieces[:-1])
        assert b"".join(pieces) == data

    def test_async_listdir_lists_as_listdir(self, storage: Storage, stored: StoredFiles) -> None:
        astorage = require(storage, "alistdir")
        for relative in ("tree/a.txt", "tree/b.bin", "tree/sub/c.txt"):
            stored.save(relative, ContentFile(relative.encode()))
        if not self.capabilities.listdir:
            with pytest.raises(NotImplementedError):
                run(storage, lambda: astorage.alistdir(stored.name("tree")))
            return
        listed = run(storage, lambda: astorage.alistdir(stored.name("tree")))
        assert listed == storage.listdir(stored.name("tree"))
        assert (sorted(listed[0]), sorted(listed[1])) == (["sub"], ["a.txt", "b.bin"])

    def test_async_modified_time_is_the_sync_one(
        self, storage: Storage, stored: StoredFiles
    ) -> None:
        astorage = require(storage, "aget_modified_time")
        name = stored.save("async-timed.bin", ContentFile(b"tick"))
        if not self.capabilities.modified_time:
            with pytest.raises(NotImplementedError):
                run(storage, lambda: astorage.aget_modified_time(name))
            return
        assert run(storage, lambda: astorage.aget_modified_time(name)) == (
            storage.get_modified_time(name)
        )

    @pytest.mark.parametrize("source", sorted(SOURCES))
    def test_async_save_and_read_back(
        self, storage: Storage, stored: StoredFiles, source: str, tmp_path: Path
    ) -> None:
        astorage = require(storage, "asave", "aopen")
        data = binary_payload(64 * 1024 + 3, seed=6)
        content = SOURCES[source](data, tmp_path)

        async def work() -> tuple[str, bytes]:
            name = await astorage.asave(stored.name("async-saved.bin"), content)
            return name, await aread_back(astorage, name)

        try:
            name, read = run(storage, work)
        finally:
            content.close()
        stored.track(name)
        assert name == stored.name("async-saved.bin")
        assert read == data and storage.size(name) == len(data)

    def test_async_save_of_text_stores_utf8(self, storage: Storage, stored: StoredFiles) -> None:
        astorage = require(storage, "asave")
        text = ContentFile(TEXT)
        name = stored.track(run(storage, lambda: astorage.asave(stored.name("t.txt"), text)))
        with storage.open(name, "rb") as stored_file:
            assert stored_file.read() == TEXT.encode("utf-8")

    def test_async_save_of_a_taken_name(self, storage: Storage, stored: StoredFiles) -> None:
        astorage = require(storage, "asave")
        first = stored.save("async-taken.txt", ContentFile(b"first version, the longer one"))
        second = stored.track(run(storage, lambda: astorage.asave(first, ContentFile(b"two"))))
        with storage.open(second, "rb") as stored_file:
            assert stored_file.read() == b"two"
        if self.capabilities.overwrite:
            assert second == first
            return
        assert second != first and posixpath.splitext(second)[1] == ".txt"
        with storage.open(first, "rb") as stored_file:
            assert stored_file.read() == b"first version, the longer one"

    @pytest.mark.parametrize("unsafe_name", UNSAFE_NAMES)
    def test_async_save_refuses_an_unsafe_name(
        self, storage: Storage, stored: StoredFiles, unsafe_name: str
    ) -> None:
        astorage = require(storage, "asave")
        with pytest.raises(SuspiciousFileOperation):
            # Track what a faulty storage stores anyway, so the test still cleans up.
            stored.track(run(storage, lambda: astorage.asave(unsafe_name, ContentFile(b"no"))))

    def test_async_saves_of_one_name_at_once_keep_every_file(
        self, storage: Storage, stored: StoredFiles
    ) -> None:
        """16 tasks of one loop and 16 threads save one name at once: 32 names, own bytes."""
        astorage = require(storage, "asave", "aopen")
        if self.capabilities.overwrite or not self.capabilities.concurrent_saves:
            pytest.skip("saves of one name at once may share it by design")
        name = stored.name("async-same.txt")

        def payload(index: int) -> bytes:
            return f"save {index} of {name}".encode() * 50

        def save_in_thread(index: int) -> tuple[bytes, str]:
            return payload(index), storage.save(name, ContentFile(payload(index)))

        async def save(index: int) -> tuple[bytes, str]:
            return payload(index), await astorage.asave(name, ContentFile(payload(index)))

        async def work() -> dict[bytes, str]:
            loop = asyncio.get_running_loop()
            with ThreadPoolExecutor(CONCURRENT_SAVES) as threads:
                synced = [
                    loop.run_in_executor(threads, save_in_thread, index)
                    for index in range(CONCURRENT_SAVES, 2 * CONCURRENT_SAVES)
                ]
                tasks: list[Awaitable[tuple[bytes, str]]] = [
                    save(index) for index in range(CONCURRENT_SAVES)
                ]
                return dict(await asyncio.gather(*tasks, *synced))

        saved = run(storage, work)
        for saved_name in saved.values():
            stored.track(saved_name)
        assert len(set(saved.values())) == 2 * CONCURRENT_SAVES, "saves were given one name"
        for data, saved_name in saved.items():
            with storage.open(saved_name, "rb") as stored_file:
                assert stored_file.read() == data, f"{saved_name} holds another save's bytes"

"""The Storage contract against MogileFSStorage on the MogileFS under test (dev or real)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from django.core.files.base import ContentFile

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.client import SpellingTakenError
from storages_mogile.testing import Capabilities, StorageContract
from storages_mogile.testing.acontract import aread_back, run
from tests.conftest import Target

# MogileFS keeps no creation or access times; everything else is there.
MOGILEFS = Capabilities(created_time=False, accessed_time=False)

T = TypeVar("T")


def mogilefs_storage(target: Target, **options) -> MogileFSStorage:
    return MogileFSStorage(
        domain=target.domain, trackers=target.trackers, base_url="/mogilefs/", **options
    )


class TestMogileFSStorage(StorageContract):
    capabilities = MOGILEFS

    @pytest.fixture
    def storage(self, mogile_target: Target) -> MogileFSStorage:
        return mogilefs_storage(mogile_target)


class TestMogileFSStorageOverwrite(StorageContract):
    capabilities = Capabilities(overwrite=True, created_time=False, accessed_time=False)

    @pytest.fixture
    def storage(self, mogile_target: Target) -> MogileFSStorage:
        return mogilefs_storage(mogile_target, file_overwrite=True)


class TestMogileFSStorageWithClass(StorageContract):
    capabilities = MOGILEFS

    @pytest.fixture
    def storage(self, mogile_target: Target) -> MogileFSStorage:
        return mogilefs_storage(mogile_target, mogile_class="avatar", key_prefix="site/")


def test_listdir_ends_and_lists_only_the_exact_spelling(mogile_target: Target) -> None:
    """A tracker on MariaDB matches ``photos`` to ``PHOTOS/b.jpg`` too; listdir
    lists the names under the exact spelling asked for, and ends."""
    storage = mogilefs_storage(mogile_target, key_prefix=f"listdir-{uuid.uuid4().hex}/")
    names = [storage.save(name, ContentFile(b".")) for name in ("photos/a.jpg", "PHOTOS/b.jpg")]
    try:
        assert _within(60, lambda: storage.listdir("photos")) == ([], ["a.jpg"])
        assert _within(60, lambda: storage.listdir("PHOTOS")) == ([], ["b.jpg"])
        assert _within(60, lambda: storage.listdir("")) == (["PHOTOS", "photos"], [])
    finally:
        for name in names:
            storage.delete(name)


def _within(seconds: float, call: Callable[[], T]) -> T:
    """``call()``, failing the test if it has not returned within ``seconds``
    (a listing that never ends must fail, not hang the run)."""
    results: list[T] = []
    thread = threading.Thread(target=lambda: results.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert results, f"no answer within {seconds} s"
    return results[0]


@pytest.fixture
def spelling_storages(mogile_target: Target) -> Iterator[tuple[MogileFSStorage, MogileFSStorage]]:
    """A storage and one with file_overwrite, on one key prefix of the test's own."""
    prefix = f"spelling-{uuid.uuid4().hex}/"
    storage = mogilefs_storage(mogile_target, key_prefix=prefix)
    yield storage, mogilefs_storage(mogile_target, key_prefix=prefix, file_overwrite=True)
    for key in list(storage.client.iter_keys(prefix)):
        storage.client.delete(key)


def test_a_name_never_reaches_the_file_of_another_spelling(spelling_storages) -> None:
    """On MariaDB ``photo.jpg`` and ``Photo.JPG`` are one key to the tracker."""
    storage, _ = spelling_storages
    assert storage.save("Photo.JPG", ContentFile(b"first")) == "Photo.JPG"
    assert not storage.exists("photo.jpg")
    with pytest.raises(FileNotFoundError):
        storage.size("photo.jpg")
    with pytest.raises(FileNotFoundError):
        storage.open("photo.jpg")
    with pytest.raises(FileNotFoundError):  # what the serving view asks
        storage.get_key_location(storage.key_for("photo.jpg"))
    storage.delete("photo.jpg")
    assert storage.open("Photo.JPG").read() == b"first"
    second = storage.save("photo.jpg", ContentFile(b"second"))
    assert storage.open(second).read() == b"second"
    assert storage.open("Photo.JPG").read() == b"first"
    assert storage.exists("Photo.JPG") and storage.size("Photo.JPG") == 5


def test_an_overwrite_never_replaces_the_file_of_another_spelling(spelling_storages) -> None:
    storage, overwriting = spelling_storages
    overwriting.save("Q.txt", ContentFile(b"upper"))
    try:
        overwriting.save("q.txt", ContentFile(b"lower"))
    except SpellingTakenError as exc:
        assert exc.key.endswith("/q.txt")  # a tracker that takes both for one key
    else:
        assert storage.open("q.txt").read() == b"lower"  # one that compares bytes
    assert storage.open("Q.txt").read() == b"upper"
    overwriting.save("Q.txt", ContentFile(b"again"))  # its own name: overwritten
    assert storage.open("Q.txt").read() == b"again"


def test_the_async_methods_never_reach_the_file_of_another_spelling(spelling_storages) -> None:
    """``test_a_name_never_reaches_the_file_of_another_spelling`` through the async methods."""
    storage, _ = spelling_storages

    async def work() -> None:
        assert await storage.asave("Photo.JPG", ContentFile(b"first")) == "Photo.JPG"
        assert not await storage.aexists("photo.jpg")
        with pytest.raises(FileNotFoundError):
            await storage.asize("photo.jpg")
        with pytest.raises(FileNotFoundError):
            await storage.aopen("photo.jpg")
        with pytest.raises(FileNotFoundError):
            await storage.aget_modified_time("photo.jpg")
        await storage.adelete("photo.jpg")
        assert await aread_back(storage, "Photo.JPG") == b"first"
        second = await storage.asave("photo.jpg", ContentFile(b"second"))
        assert await aread_back(storage, second) == b"second"
        assert await aread_back(storage, "Photo.JPG") == b"first"
        assert await storage.aexists("Photo.JPG") and await storage.asize("Photo.JPG") == 5

    run(storage, work)


def test_an_async_overwrite_never_replaces_the_file_of_another_spelling(
    spelling_storages,
) -> None:
    storage, overwriting = spelling_storages

    async def work() -> None:
        await overwriting.asave("Q.txt", ContentFile(b"upper"))
        try:
            await overwriting.asave("q.txt", ContentFile(b"lower"))
        except SpellingTakenError as exc:
            assert exc.key.endswith("/q.txt")  # a tracker that takes both for one key
        else:
            assert await aread_back(storage, "q.txt") == b"lower"  # one that compares bytes
        assert await aread_back(storage, "Q.txt") == b"upper"
        await overwriting.asave("Q.txt", ContentFile(b"again"))  # its own name: overwritten
        assert await aread_back(storage, "Q.txt") == b"again"

    run(storage, work)

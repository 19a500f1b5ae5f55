"""The Storage contract against MogileFSStorage on the MogileFS under test (dev or real)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import TypeVar

import pytest
from django.core.files.base import ContentFile

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.testing import Capabilities, StorageContract
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

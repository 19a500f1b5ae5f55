"""Checksums through the storage: the MD5 a save records, kept in the path cache,
and ``verify_checksum`` reads that skip a copy damaged without changing its size.

Runs on the dev MogileFS and on the real one (``md5_class`` makes the
hash-typed class).
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator

import pytest
from django.core.files.base import ContentFile

from storages_mogile.backends.mogile import MogileFSStorage
from tests.client.test_damaged_copies import damage
from tests.conftest import Target

DATA = os.urandom(200_000)
MD5 = hashlib.md5(DATA).hexdigest()
REPLICATION_TIMEOUT = 30


@pytest.fixture
def summed_storage(settings, mogile_target: Target, md5_class: str) -> Iterator[MogileFSStorage]:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "paths": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "s"},
    }
    storage = MogileFSStorage(
        domain=mogile_target.domain,
        trackers=mogile_target.trackers,
        mogile_class=md5_class,
        key_prefix=f"summed-{uuid.uuid4().hex}/",
        path_cache="paths",
    )
    yield storage
    for key in list(storage.client.iter_keys(storage.key_prefix)):
        storage.client.delete(key)
    storage.client.close()


def damage_a_copy(storage: MogileFSStorage, name: str) -> str:
    """Flip the first byte of one copy, once there are two; its URL."""
    key = storage.key_for(name)
    deadline = time.monotonic() + REPLICATION_TIMEOUT
    while storage.client.file_info(key).devcount < 2:
        assert time.monotonic() < deadline, "not replicated in time"
        time.sleep(0.1)
    bad = storage.client.get_paths(key, noverify=True)[0]
    damage(bad, bytes([DATA[0] ^ 0xFF]) + DATA[1:])
    return bad


def test_a_save_records_the_md5_and_the_path_cache_keeps_it(
    summed_storage: MogileFSStorage,
) -> None:
    name = summed_storage.save("a.bin", ContentFile(DATA))
    assert summed_storage.get_key_location(summed_storage.key_for(name)).md5 == MD5
    summed_storage.client.close()  # a cache hit needs no tracker
    assert summed_storage._path_cache.get(summed_storage.key_for(name)).md5 == MD5


def test_verify_checksum_reads_skip_a_damaged_copy(summed_storage: MogileFSStorage) -> None:
    name = summed_storage.save("b.bin", ContentFile(DATA))
    damage_a_copy(summed_storage, name)
    summed_storage.verify_checksum = True
    for _ in range(10):
        summed_storage._path_cache.forget(summed_storage.key_for(name))  # paths in a new order
        with summed_storage.open(name) as opened:
            assert opened.read() == DATA


def test_without_verify_checksum_a_damaged_copy_is_read_as_the_file(
    summed_storage: MogileFSStorage,
) -> None:
    """What verify_checksum prevents: the damaged copy has the right length, so
    nothing else can tell it apart."""
    name = summed_storage.save("c.bin", ContentFile(DATA))
    bad = damage_a_copy(summed_storage, name)
    key = summed_storage.key_for(name)
    with summed_storage.client.read_file(key, paths=[bad], size=len(DATA)) as stream:
        assert stream.read() != DATA

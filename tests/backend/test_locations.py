"""Reads through the storage when every cached path fails: the tracker is asked again.

Needs a dev cluster of its own (a node stopped and started).
"""

from __future__ import annotations

import os
import time

import pytest
from django.core.files.base import ContentFile

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.devserver import DevCluster
from storages_mogile.pathcache import PathCache
from tests.conftest import TEST_DOMAIN


@pytest.fixture
def cached_storage(settings, dev_cluster: DevCluster) -> MogileFSStorage:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "paths": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "l"},
    }
    return MogileFSStorage(
        domain=TEST_DOMAIN,
        trackers=dev_cluster.trackers,
        mogile_class="avatar",
        path_cache="paths",
    )


def test_open_asks_the_tracker_again_when_every_cached_path_fails(
    cached_storage: MogileFSStorage, dev_cluster: DevCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PathCache, "incomplete_timeout", 300)  # only asking again can help
    data = os.urandom(50_000)
    dev_cluster.nodes[1].stop()
    name = cached_storage.save("late-copy.bin", ContentFile(data))  # one copy, on node 0
    with cached_storage.open(name) as file:  # caches that one path
        assert file.read() == data
    dev_cluster.nodes[1].start()
    key = cached_storage.key_for(name)
    deadline = time.monotonic() + 30
    while cached_storage.client.file_info(key).devcount < 2:
        assert time.monotonic() < deadline, "not replicated"
        time.sleep(0.05)
    dev_cluster.nodes[0].stop()
    with cached_storage.open(name) as file:
        assert file.read() == data
    assert cached_storage.get_modified_time(name) is not None
    assert len(cached_storage.get_key_location(key).paths) == 2

"""Stream mode with a copy damaged on its storage node (same length, other bytes),
through wsgiref: the intact copy serves, the damaged one is read last afterwards.

Runs on the dev MogileFS and on the real one (``md5_class`` makes the
hash-typed class; the copy is damaged with a PUT to its path, which
mogstored accepts).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator

import pytest
import urllib3
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.client import Client
from storages_mogile.pathcache import PathCache
from tests.client.test_damaged_copies import damage
from tests.conftest import Target
from tests.serving.conftest import ALIAS, mogile_storages
from tests.serving.wsgi import wsgiref_server

REPLICATION_TIMEOUT = 30
GETS = 10


def flipped(data: bytes) -> bytes:
    """Other bytes of the same length."""
    return bytes([data[0] ^ 0xFF]) + data[1:]


@pytest.fixture
def verifying_site(settings, mogile_target: Target, md5_class: str):
    """Settings streaming a verifying storage of the hash-typed class; see ``configure``."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "paths": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "d"},
    }
    settings.ROOT_URLCONF = "tests.serving.urls"
    settings.MOGILEFS_SERVE_STORAGE = ALIAS
    settings.MOGILEFS_SERVE_MODE = "stream"
    prefix = f"damaged-{uuid.uuid4().hex}/"
    made: list[MogileFSStorage] = []

    def configure(**options: object) -> MogileFSStorage:
        settings.STORAGES = mogile_storages(
            mogile_target.trackers,
            domain=mogile_target.domain,
            mogile_class=md5_class,
            verify_checksum=True,
            key_prefix=prefix,
            **options,
        )
        made.append(storages[ALIAS])
        return made[-1]

    yield configure
    with Client(mogile_target.domain, mogile_target.trackers) as client:
        for key in list(client.iter_keys(prefix)):
            client.delete(key)


@pytest.fixture
def site() -> Iterator[str]:
    with wsgiref_server() as url:
        yield url


@pytest.fixture
def http() -> urllib3.PoolManager:
    return urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=30))


def saved_with_two_copies(storage: MogileFSStorage, data: bytes) -> tuple[str, str]:
    """Save ``data``, wait for its second copy: ``(name, key)``."""
    name = storage.save("file.bin", ContentFile(data))
    key = storage.key_for(name)
    deadline = time.monotonic() + REPLICATION_TIMEOUT
    while storage.client.file_info(key).devcount < 2:
        assert time.monotonic() < deadline, f"{key} was not replicated"
        time.sleep(0.1)
    return name, key


def outcomes(http: urllib3.PoolManager, url: str, data: bytes, count: int = GETS) -> list[str]:
    """What ``count`` GETs of ``url`` gave: "ok", "HTTP <status>", or "cut short"."""
    found = []
    for _ in range(count):
        try:
            response = http.request("GET", url)
        except urllib3.exceptions.ProtocolError:
            found.append("cut short")
            continue
        if response.status != 200:
            found.append(f"HTTP {response.status}")
        else:
            found.append("ok" if response.data == data else "wrong bytes")
    return found


@pytest.mark.parametrize("path_cache", ["paths", None], ids=["path-cache", "no-path-cache"])
def test_a_damaged_copy_of_a_one_chunk_file_is_passed_over(
    verifying_site, site, http, path_cache, caplog
):
    storage = verifying_site(path_cache=path_cache)
    data = os.urandom(200_000)  # one chunk
    name, key = saved_with_two_copies(storage, data)
    bad = storage.get_key_location(key).paths[0]  # the copy read first (cached, if cached)
    damage(bad, flipped(data))
    with caplog.at_level(logging.ERROR, logger="storages_mogile"):
        assert outcomes(http, f"{site}/mogilefs/{name}", data) == ["ok"] * GETS
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and bad in errors[0].getMessage()
    assert storage.get_key_location(key).paths[-1] == bad


def test_a_damaged_copy_cuts_one_response_short_and_is_read_last_afterwards(
    verifying_site, site, http
):
    """A file of several chunks is checked at its end, after its first bytes were
    sent: that response is cut short; the next ones come from the intact copy."""
    storage = verifying_site(path_cache="paths", chunk_size=64 * 1024)
    data = os.urandom(300_000)
    name, key = saved_with_two_copies(storage, data)
    bad = storage.get_key_location(key).paths[0]
    damage(bad, flipped(data))
    found = outcomes(http, f"{site}/mogilefs/{name}", data)
    assert found == ["cut short"] + ["ok"] * (GETS - 1)


def test_the_shared_path_cache_hands_out_a_damaged_copy_last(verifying_site, site, http):
    """Another process (its own client, which never met the damaged copy) gets the
    location from the shared cache, or fresh from the tracker, with it last."""
    storage = verifying_site(path_cache="paths")
    data = os.urandom(100_000)
    name, key = saved_with_two_copies(storage, data)
    bad = storage.get_key_location(key).paths[0]
    damage(bad, flipped(data))
    assert outcomes(http, f"{site}/mogilefs/{name}", data, 1) == ["ok"]
    other_process = PathCache("paths", 300, storage.domain)
    assert other_process.get(key).paths[-1] == bad
    other_process.forget(key)
    with Client(storage.domain, storage.client.trackers.trackers) as other_client:
        for _ in range(4):  # the tracker lists the copies in any order
            assert bad not in other_client.damaged
            fresh = other_process.set(key, other_client.locate(key))
            assert fresh.paths[-1] == bad


def test_every_copy_of_a_one_chunk_file_damaged_is_a_503(verifying_site, site, http):
    storage = verifying_site(path_cache="paths")
    data = os.urandom(100_000)
    name, key = saved_with_two_copies(storage, data)
    for path in storage.client.get_paths(key, noverify=True):
        damage(path, flipped(data))
    response = http.request("GET", f"{site}/mogilefs/{name}")
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"

"""Fixtures for the serving view: a MogileFS storage alias behind a counting relay."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.signals import request_finished
from django.db import close_old_connections
from django.http import HttpResponseBase
from django.test import Client

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.devserver import DevCluster
from storages_mogile.serving.urls import async_client_available
from tests.conftest import TEST_DOMAIN
from tests.serving.asgi_client import AsgiClient, LoopThread
from tests.serving.relay import CountingRelay

ALIAS = "mogilefs"


def mogile_storages(trackers: list[str], **options: object) -> dict[str, dict]:
    """A STORAGES setting with a MogileFS storage under ALIAS, path cache on."""
    return {
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        ALIAS: {
            "BACKEND": "storages_mogile.backends.mogile.MogileFSStorage",
            "OPTIONS": {
                "domain": TEST_DOMAIN,
                "trackers": trackers,
                "base_url": "/mogilefs/",
                "path_cache": "paths",
                **options,
            },
        },
    }


@pytest.fixture(scope="module")
def relay(mogile_cluster: DevCluster) -> Iterator[CountingRelay]:
    """A relay counting the requests sent to the session cluster's tracker."""
    with CountingRelay(mogile_cluster.trackers[0]) as relay:
        yield relay


@pytest.fixture
def serving_settings(settings, relay: CountingRelay):
    """Settings serving STORAGES[ALIAS] (through the relay) at /mogilefs/ in stream mode."""
    settings.STORAGES = mogile_storages([relay.address])
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "paths": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "p"},
    }
    settings.ROOT_URLCONF = "tests.serving.urls"
    settings.MOGILEFS_SERVE_STORAGE = ALIAS
    settings.MOGILEFS_SERVE_MODE = "stream"
    return settings


@pytest.fixture
def storage(serving_settings) -> MogileFSStorage:
    return storages[ALIAS]


@pytest.fixture
def stored(storage: MogileFSStorage) -> Callable[..., str]:
    """Save bytes under a fresh name ending in ``suffix``; returns the name."""

    def store(data: bytes, suffix: str = ".bin") -> str:
        return storage.save(f"serving/{uuid.uuid4().hex}{suffix}", ContentFile(data))

    return store


def wait_for_paths(
    storage: MogileFSStorage, name: str, count: int, timeout: float = 10.0
) -> list[str]:
    """The paths of ``name`` once the tracker lists ``count`` of them (replication is async)."""
    deadline = time.monotonic() + timeout
    key = storage.key_for(name)
    while True:
        paths = storage.client.get_paths(key)
        if len(paths) >= count or time.monotonic() > deadline:
            assert len(paths) >= count, f"{name!r} has {len(paths)} paths after {timeout}s"
            return paths
        time.sleep(0.05)


@pytest.fixture(params=["wsgi", "asgi"])
def client(request: pytest.FixtureRequest, client: Client) -> Iterator[Client | AsgiClient]:
    """Django's test client (``wsgi``: the sync view) or its AsyncClient (``asgi``: the
    async view), whose responses are closed after the test.

    A WSGI or ASGI server closes every response; the test client closes a
    streaming one only when its content is read to the end, and a test
    that looks at the headers alone would leave the storage node's
    connection to the garbage collector.
    """
    if request.param == "wsgi":
        responses: list[HttpResponseBase] = []
        send = client.request

        def record(**kwargs: Any) -> HttpResponseBase:
            response = send(**kwargs)
            responses.append(response)
            return response

        client.request = record  # type: ignore[method-assign]
        yield client
        close_all(responses)
        return
    if not async_client_available():
        pytest.skip("the asyncio client is not installed (the 'async' extra)")
    loop = LoopThread()
    try:
        asgi = AsgiClient(loop)
        yield asgi
        close_all(asgi.responses)
    finally:
        loop.stop()


def close_all(responses: list[HttpResponseBase]) -> None:
    """Close responses as a server would."""
    # close() sends request_finished; as the test client does, keep it from the database.
    request_finished.disconnect(close_old_connections)
    try:
        for response in responses:
            response.close()
    finally:
        request_finished.connect(close_old_connections)

"""Fixtures of the end-to-end tests: a MogileFS, Django under uvicorn, Perlbal, nginx.

The MogileFS is a dev cluster of the package's own, or the real one the run
names (tests/conftest.py). All of them live for the e2e package and are
stopped at its end. Tests that stop a storage node need the dev cluster
(skipped on a real MogileFS) and start it again before they finish.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import urllib3

# The real MogileFS replicates a few seconds after a store (always within 15 s in the lab).
REPLICATION_TIMEOUT = 30

from storages_mogile.client import Client
from storages_mogile.devserver import DevCluster
from tests.conftest import TEST_DOMAIN, Target, real_mogilefs, skip_on_real_mogilefs, start_cluster
from tests.e2e.servers import (
    Server,
    django_server,
    find_binary,
    nginx_server,
    perlbal_server,
    wsgiref_server,
)


def require_binary(name: str) -> str:
    """The proxy's executable; a missing one skips, but fails under CI=true."""
    path = find_binary(name)
    if path is not None:
        return path
    reason = f"{name} is not installed: run scripts/install-proxies (apt-get install perlbal nginx-light)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; the end-to-end tests must run in CI", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="package")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="package")
def e2e_dev_cluster(e2e_dir: Path) -> Iterator[DevCluster | None]:
    """The package's dev cluster; None when the run names a real MogileFS."""
    if real_mogilefs() is not None:
        yield None
        return
    cluster = start_cluster(e2e_dir / "mogile")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="package")
def e2e_mogilefs(e2e_dev_cluster: DevCluster | None) -> Target:
    """The MogileFS behind the site: the real one the run names, else the dev cluster."""
    if e2e_dev_cluster is None:
        real = real_mogilefs()
        assert real is not None
        return real
    return Target(list(e2e_dev_cluster.trackers), TEST_DOMAIN, real=False)


@pytest.fixture(scope="package")
def django_site(e2e_dir: Path, e2e_mogilefs: Target) -> Iterator[Server]:
    with django_server(e2e_dir, e2e_mogilefs.trackers, e2e_mogilefs.domain) as server:
        yield server


@pytest.fixture(scope="package")
def shared_threads_site(e2e_dir: Path, e2e_mogilefs: Target) -> Iterator[Server]:
    """The site under uvicorn wrapped in SharedThreads (4 threads)."""
    trackers, domain = e2e_mogilefs.trackers, e2e_mogilefs.domain
    with django_server(e2e_dir, trackers, domain, "asgi_shared", "uvicorn-shared") as server:
        yield server


@pytest.fixture(scope="package")
def wsgi_site(e2e_dir: Path, e2e_mogilefs: Target) -> Iterator[Server]:
    """The same site under a WSGI server (wsgiref)."""
    with wsgiref_server(e2e_dir, e2e_mogilefs.trackers, e2e_mogilefs.domain) as server:
        yield server


@pytest.fixture(scope="package")
def perlbal(e2e_dir: Path, django_site: Server) -> Iterator[Server]:
    with perlbal_server(require_binary("perlbal"), e2e_dir, django_site) as server:
        yield server


@pytest.fixture(scope="package")
def nginx(e2e_dir: Path, django_site: Server) -> Iterator[Server]:
    with nginx_server(require_binary("nginx"), e2e_dir, django_site) as server:
        yield server


@pytest.fixture(scope="package")
def http() -> urllib3.PoolManager:
    return urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=30))


@pytest.fixture(scope="package")
def mogile(e2e_mogilefs: Target) -> Iterator[Client]:
    client = Client(e2e_mogilefs.domain, e2e_mogilefs.trackers)
    yield client
    client.close()


@pytest.fixture
def put(mogile: Client) -> Callable[..., str]:
    """Store bytes under a fresh key (class avatar: two copies, unless ``cls``
    names another); returns the key.

    Waits until the tracker lists every copy, so the served paths include
    a replica to fall through to.
    """

    def store(data: bytes, suffix: str = ".bin", cls: str = "avatar") -> str:
        key = f"e2e/{uuid.uuid4().hex}{suffix}"
        mogile.store_content(key, data, cls=cls)
        deadline = time.monotonic() + REPLICATION_TIMEOUT
        while len(mogile.get_paths(key, noverify=True)) < mogile.copies_wanted(cls):
            assert time.monotonic() < deadline, (
                f"{key} was not replicated within {REPLICATION_TIMEOUT} s"
            )
            time.sleep(0.1)
        return key

    return store


@pytest.fixture
def e2e_cluster(e2e_dev_cluster: DevCluster | None) -> DevCluster:
    """The package's dev cluster, for tests that control it; skips on a real MogileFS."""
    skip_on_real_mogilefs()
    assert e2e_dev_cluster is not None
    return e2e_dev_cluster


@pytest.fixture
def stop_node(e2e_cluster: DevCluster) -> Iterator[Callable[[str], None]]:
    """``stop_node(url)`` stops the storage node serving ``url`` until the test ends."""
    stopped = []

    def stop(url: str) -> None:
        node = next(node for node in e2e_cluster.nodes if url.startswith(node.url + "/"))
        node.stop()
        stopped.append(node)

    yield stop
    for node in stopped:
        node.start()

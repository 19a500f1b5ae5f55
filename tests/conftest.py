"""Fixtures shared by the whole suite: the MogileFS to run against.

By default that is a dev MogileFS on loopback. ``MOGILEFS_TEST_TRACKERS``
(comma-separated ``host:port``) and ``MOGILEFS_TEST_DOMAIN`` name a real
one instead, and ``--real-mogilefs`` starts the real MogileFS lab for the
run (tests/lab.py). Its domain needs the classes ``avatar`` (mindevcount 2)
and ``thumb`` (mindevcount 1). Tests that stop nodes or trackers need a dev
cluster's controls (``dev_cluster``) and are skipped on a real MogileFS.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from storages_mogile.client import Admin, Client
from storages_mogile.devserver import DevCluster

pytest_plugins = ["tests.lab"]

TRACKERS_ENV = "MOGILEFS_TEST_TRACKERS"
DOMAIN_ENV = "MOGILEFS_TEST_DOMAIN"

TEST_DOMAIN = "testdomain"
TEST_CLASSES = {"avatar": 2, "thumb": 1}


@dataclass(frozen=True)
class Target:
    """The MogileFS the tests run against."""

    trackers: list[str]
    domain: str
    real: bool


def real_mogilefs() -> Target | None:
    """The MogileFS named by the environment, if any."""
    trackers = os.environ.get(TRACKERS_ENV, "").strip()
    if not trackers:
        return None
    domain = os.environ.get(DOMAIN_ENV, "").strip()
    if not domain:
        raise pytest.UsageError(f"{TRACKERS_ENV} is set: set {DOMAIN_ENV} to the test domain too")
    return Target([t.strip() for t in trackers.split(",") if t.strip()], domain, real=True)


def skip_on_real_mogilefs() -> None:
    """Skip a test that needs a dev cluster's controls when a real MogileFS is named."""
    if real_mogilefs() is not None:
        pytest.skip(
            "needs a dev cluster of its own (stops nodes or trackers, or changes the setup)"
        )


@pytest.fixture(scope="session")
def mogile_target(request: pytest.FixtureRequest) -> Target:
    """A real MogileFS from the environment, else the session's dev cluster."""
    target = real_mogilefs()
    if target is not None:
        return target
    cluster: DevCluster = request.getfixturevalue("mogile_cluster")
    return Target(list(cluster.trackers), TEST_DOMAIN, real=False)


@contextlib.contextmanager
def hash_typed_class(target: Target) -> Iterator[str]:
    """A class of the target's domain with hash type MD5 (2 copies), deleted afterwards.

    The lab's domain has no hash-typed class. This one is created, then
    waited for on every tracker (a real tracker's class cache lags another
    tracker's writes); its files must be deleted before it is.
    """
    name = f"md5-{uuid.uuid4().hex[:8]}"
    with Admin(target.trackers) as admin:
        admin.create_class(target.domain, name, 2, hashtype="MD5")
        deadline = time.monotonic() + 30
        for tracker in target.trackers:
            with Client(target.domain, [tracker]) as client:
                client.class_cache_timeout = 0  # ask the tracker every time
                while not client.records_checksums(name):
                    assert time.monotonic() < deadline, f"{tracker} does not list class {name}"
                    time.sleep(0.5)
        yield name
        admin.delete_class(target.domain, name)


@pytest.fixture(scope="session")
def md5_class(mogile_target: Target) -> Iterator[str]:
    """A hash-typed class (MD5, 2 copies) of the test domain, for the session."""
    with hash_typed_class(mogile_target) as name:
        yield name


@pytest.fixture
def dev_cluster(request: pytest.FixtureRequest) -> DevCluster:
    """A dev cluster of the test's own, to stop and start parts of; skips on a real MogileFS."""
    skip_on_real_mogilefs()
    return request.getfixturevalue("fault_cluster")


def start_cluster(data_dir: Path, nodes: int = 2) -> DevCluster:
    """A running dev cluster with the test domain and its classes."""
    return DevCluster(data_dir, nodes=nodes, domains={TEST_DOMAIN: TEST_CLASSES}).start()


@pytest.fixture(scope="session")
def mogile_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    """One dev cluster for the session: two storage nodes, one tracker.

    Tests that stop nodes or trackers must use ``fault_cluster`` instead.
    """
    cluster = start_cluster(tmp_path_factory.mktemp("mogile"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def mogilefs_dev_cluster(mogile_cluster: DevCluster) -> DevCluster:
    """The package's pytest plugin uses the session's dev cluster, not one of its own."""
    return mogile_cluster


@pytest.fixture
def fault_cluster(tmp_path: Path) -> Iterator[DevCluster]:
    """A dev cluster of its own, for tests that stop and start its parts."""
    cluster = start_cluster(tmp_path / "mogile")
    yield cluster
    cluster.stop()

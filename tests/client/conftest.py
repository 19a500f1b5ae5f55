"""Fixtures for the client tests: a MogileFS to talk to, and keys to clean up.

By default the tests use the dev cluster (``mogile_cluster`` from
tests/conftest.py). Set ``MOGILEFS_TEST_TRACKERS`` (comma-separated
``host:port``) and ``MOGILEFS_TEST_DOMAIN`` to run them against a real
MogileFS instead; its domain needs the classes ``avatar`` (mindevcount 2)
and ``thumb`` (mindevcount 1). Tests that stop nodes or trackers need the
dev cluster's controls and are skipped there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from storages_mogile.client import Client, UnknownKeyError
from storages_mogile.devserver import DevCluster
from tests.conftest import TEST_DOMAIN

TRACKERS_ENV = "MOGILEFS_TEST_TRACKERS"
DOMAIN_ENV = "MOGILEFS_TEST_DOMAIN"


@dataclass(frozen=True)
class Target:
    """The MogileFS the tests run against."""

    trackers: list[str]
    domain: str


def real_mogilefs() -> Target | None:
    """The MogileFS named by the environment, if any."""
    trackers = os.environ.get(TRACKERS_ENV, "").strip()
    if not trackers:
        return None
    domain = os.environ.get(DOMAIN_ENV, "").strip()
    if not domain:
        raise pytest.UsageError(f"{TRACKERS_ENV} is set: set {DOMAIN_ENV} to the test domain too")
    return Target([t.strip() for t in trackers.split(",") if t.strip()], domain)


@pytest.fixture(scope="session")
def mogile_target(request: pytest.FixtureRequest) -> Target:
    """A real MogileFS from the environment, else the session's dev cluster."""
    target = real_mogilefs()
    if target is not None:
        return target
    cluster: DevCluster = request.getfixturevalue("mogile_cluster")
    return Target(list(cluster.trackers), TEST_DOMAIN)


@pytest.fixture
def dev_cluster(request: pytest.FixtureRequest) -> DevCluster:
    """A dev cluster of the test's own, to stop and start parts of; skips on a real MogileFS."""
    if real_mogilefs() is not None:
        pytest.skip(
            "needs a dev cluster of its own (stops nodes or trackers, or changes the setup)"
        )
    return request.getfixturevalue("fault_cluster")


@pytest.fixture
def client(mogile_target: Target) -> Iterator[Client]:
    client = Client(mogile_target.domain, mogile_target.trackers)
    yield client
    client.close()


class Keys:
    """Unique keys for one test, deleted afterwards."""

    def __init__(self, client: Client) -> None:
        self.prefix = f"client-tests/{uuid.uuid4().hex}/"
        self._client = client

    def __call__(self, name: str = "") -> str:
        return self.prefix + name

    def cleanup(self) -> None:
        for key in list(self._client.iter_keys(self.prefix)):
            try:
                self._client.delete(key)
            except UnknownKeyError:
                pass


@pytest.fixture
def keys(client: Client) -> Iterator[Keys]:
    made = Keys(client)
    yield made
    made.cleanup()

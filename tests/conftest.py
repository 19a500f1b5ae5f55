"""Fixtures shared by the whole suite: dev MogileFS clusters on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from storages_mogile.devserver import DevCluster

TEST_DOMAIN = "testdomain"
TEST_CLASSES = {"avatar": 2, "thumb": 1}


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


@pytest.fixture
def fault_cluster(tmp_path: Path) -> Iterator[DevCluster]:
    """A dev cluster of its own, for tests that stop and start its parts."""
    cluster = start_cluster(tmp_path / "mogile")
    yield cluster
    cluster.stop()

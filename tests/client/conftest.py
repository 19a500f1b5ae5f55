"""Fixtures for the client tests: a client of the MogileFS under test, keys to clean up.

Which MogileFS that is, and the ``dev_cluster`` fixture of tests that stop
its parts, is up to tests/conftest.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from storages_mogile.client import Client, UnknownKeyError
from storages_mogile.client import core as core_module
from storages_mogile.client.protocol import Request
from tests.conftest import Target

from .fakes import Answer, ScriptedTracker


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


@pytest.fixture
def tracker_factory() -> Iterator[Callable[[Callable[[Request, int], Answer]], ScriptedTracker]]:
    """Makes ScriptedTrackers and closes them after the test."""
    made: list[ScriptedTracker] = []

    def make(respond: Callable[[Request, int], Answer]) -> ScriptedTracker:
        made.append(ScriptedTracker(respond))
        return made[-1]

    yield make
    for tracker in made:
        tracker.close()


@pytest.fixture
def in_given_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trackers are tried in the order given instead of at random."""
    monkeypatch.setattr(core_module.random, "shuffle", lambda items: None)

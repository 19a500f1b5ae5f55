"""Fixtures for the client tests: a client of the MogileFS under test, keys to clean up.

Which MogileFS that is, and the ``dev_cluster`` fixture of tests that stop
its parts, is up to tests/conftest.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from storages_mogile.client import Client, UnknownKeyError
from tests.conftest import Target


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

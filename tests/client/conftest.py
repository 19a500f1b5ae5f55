"""Fixtures for the client tests: a client of the MogileFS under test, keys to clean up.

Which MogileFS that is, and the ``dev_cluster`` fixture of tests that stop
its parts, is up to tests/conftest.py.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

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


def after_file_info(pool: Any, key: str, action: Callable[[], None]) -> Callable[..., Any]:
    """``pool.call`` (a client's tracker pool, sync or async) that runs ``action``
    once, right after a ``file_info`` of ``key`` is answered (or refused):
    another client's real write lands between two requests of one operation."""
    call = pool.call
    acted: list[bool] = []

    def act(command: str, args: Mapping[str, Any], **settings: Any) -> Any:
        if command == "file_info" and args.get("key") == key and not acted:
            acted.append(True)
            return _then(lambda: call(command, args, **settings), action)
        return call(command, args, **settings)

    return act


def _then(call: Callable[[], Any], action: Callable[[], None]) -> Any:
    """``call()``, then ``action()``; after awaiting a coroutine's answer (an async pool's)."""
    try:
        answer = call()
    except BaseException:
        action()
        raise
    if not inspect.isawaitable(answer):
        action()
        return answer

    async def awaited() -> Any:
        try:
            return await answer
        finally:
            action()

    return awaited()


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

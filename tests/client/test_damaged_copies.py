"""A copy damaged on its storage node (truncated, or longer) is never read as the file.

The tracker's length is the reference: a copy of another length is skipped
for the next one. The damage is done over HTTP (a PUT to the copy's path),
which mogstored and the dev nodes both accept, so this runs on a real
MogileFS too.
"""

from __future__ import annotations

import os
import time

import pytest
import urllib3

from storages_mogile.client import Client

from .conftest import Keys

SIZE = 1_000_000
READS = 200


def two_paths(client: Client, key: str, timeout: float = 30.0) -> list[str]:
    """The key's paths once it has two copies (replication is asynchronous)."""
    deadline = time.monotonic() + timeout
    while len(paths := client.get_paths(key, noverify=True)) < 2:
        assert time.monotonic() < deadline, f"{key} was not replicated within {timeout} s"
        time.sleep(0.1)
    return paths


def damage(path: str, content: bytes) -> None:
    """Replace one copy's bytes on its storage node."""
    response = urllib3.request("PUT", path, body=content, retries=False)
    assert 200 <= response.status < 300, f"PUT {path}: HTTP {response.status}"


@pytest.mark.parametrize("damaged", [b"x" * 1000, b"y" * (SIZE + 10)], ids=["short", "long"])
def test_a_damaged_copy_is_never_read(client: Client, keys: Keys, damaged: bytes) -> None:
    data = os.urandom(SIZE)
    key = keys("damaged")
    client.store_content(key, data, "avatar")
    paths = two_paths(client, key)
    damage(paths[0], damaged)
    wrong = sum(client.get_file_data(key) != data for _ in range(READS))
    assert wrong == 0
    # Unverified paths (noverify, a path cache) in either order, with the tracker's length:
    for order in (paths, paths[::-1]):
        with client.read_file(key, paths=order, size=SIZE) as stream:
            assert stream.readall() == data
        with client.read_file(key, offset=SIZE - 10, paths=order, size=SIZE) as tail:
            assert tail.readall() == data[-10:]
        assert client.stat(key, paths=order, size=SIZE).length == SIZE

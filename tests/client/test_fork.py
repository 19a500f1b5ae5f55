"""A Client used before fork(): parent and child never share a socket.

gunicorn ``--preload``, uWSGI without lazy-apps and Celery's prefork pool
fork after the storage may have been used. Parent and child then read at
the same moment; a storage-node connection inherited by the child would be
one socket for two readers, each getting pieces of the other's response.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from storages_mogile.client import Client, MogileFSError

from .conftest import Keys

ROUNDS = 200
SIZE = 230_000
HALF = SIZE // 2


def read_part(client: Client, key: str, paths: list[str], offset: int) -> bytes | str:
    """The bytes read, or the error instead (a mixed-up response often breaks the HTTP parse)."""
    try:
        with client.read_file(key, offset=offset, length=HALF, paths=paths) as stream:
            return stream.readall()
    except MogileFSError as exc:
        return repr(exc)


def reads_at_once_after_fork(parent: Callable[[], bool], child: Callable[[], bool]) -> list[str]:
    """Fork; ``child()`` in the child while ``parent()`` runs here: what went
    wrong (each is a read that tells whether it got the right bytes)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        try:
            os.write(write_end, b"ok" if child() else b"wrong")
        finally:
            os._exit(0)
    os.close(write_end)
    parent_ok = parent()
    child_said = os.read(read_end, 16)
    os.close(read_end)
    os.waitpid(pid, 0)
    wrong = [] if parent_ok else ["parent"]
    return wrong if child_said == b"ok" else [*wrong, f"child said {child_said!r}"]


# Python 3.12+ warns that fork() in a process with threads (the dev MogileFS's) may deadlock.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_parent_and_child_read_at_once_after_fork(client: Client, keys: Keys) -> None:
    data = os.urandom(SIZE)
    key = keys("forked")
    client.store_content(key, data, "thumb")  # one copy: every read goes to one node
    paths = client.get_paths(key)
    wrong = []
    for round_ in range(ROUNDS):
        assert read_part(client, key, paths, 0) == data[:HALF]  # a kept-alive connection
        failed = reads_at_once_after_fork(
            lambda: read_part(client, key, paths, 0) == data[:HALF],
            lambda: read_part(client, key, paths, HALF) == data[HALF:],
        )
        wrong += [f"round {round_}: {what}" for what in failed]
    assert wrong == []

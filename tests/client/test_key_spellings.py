"""Keys that differ only in letter case, on any tracker (dev, SQLite, MariaDB).

A tracker on MariaDB (``utf8mb4_general_ci``) matches list_keys prefixes
case-insensitively and orders pages by the collation, but its ``next_after``
is the page's byte-wise greatest key; one on SQLite matches case-insensitively
and orders by bytes. Listings must end either way, with each key once.
"""

from __future__ import annotations

import socketserver
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import chain, islice

import pytest

from storages_mogile.client import Client, KeyExistsError, ListingStalledError, UnknownKeyError
from storages_mogile.client.protocol import encode_ok

from .conftest import Keys
from .fakes import serve_handler

COUNT = 1200  # more than a tracker's page of 1000


@pytest.fixture(scope="module")
def spellings(mogile_target) -> Iterator[tuple[list[str], list[str]]]:
    """COUNT keys alternating between a prefix and its upper-case spelling
    (stored once for the page sizes: thousands of stores on a real tracker)."""
    with Client(mogile_target.domain, mogile_target.trackers) as client:
        keys = Keys(client)
        upper = keys.prefix.upper()
        lower_keys = [keys(f"{index:04d}") for index in range(0, COUNT, 2)]
        upper_keys = [f"{upper}{index:04d}" for index in range(1, COUNT, 2)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda key: client.store_content(key, b"."), lower_keys + upper_keys))
        yield lower_keys, upper_keys
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda key: _delete(client, key), upper_keys))
        keys.cleanup()


def _delete(client: Client, key: str) -> None:
    try:
        client.delete(key)
    except UnknownKeyError:
        pass


@pytest.mark.parametrize("page_size", [1000, 100, 7])
def test_iter_keys_lists_each_key_of_the_exact_prefix_once(
    client: Client, spellings: tuple[list[str], list[str]], page_size: int
) -> None:
    lower_keys, upper_keys = spellings
    prefix, upper = lower_keys[0][:-4], upper_keys[0][:-4]
    # islice: a listing that repeats keys must fail here, not run forever.
    listed = list(islice(client.iter_keys(prefix, page_size=page_size), COUNT + 1))
    assert listed == lower_keys
    listed = list(islice(client.iter_keys(upper, page_size=page_size), COUNT + 1))
    assert listed == upper_keys


class SamePageTracker(socketserver.StreamRequestHandler):
    """A tracker whose list_keys answers the same page whatever ``after`` is:
    no real tracker's page can be made to stall the client's paging now."""

    def handle(self) -> None:
        while self.rfile.readline():
            self.wfile.write(encode_ok({"key_count": 2, "key_1": "a/1", "key_2": "a/2"}))


@pytest.fixture
def same_page_tracker() -> Iterator[str]:
    with serve_handler(SamePageTracker) as address:
        yield address


@pytest.mark.parametrize("prefix", [None, "a/", "a/(1)"])
def test_a_page_that_makes_no_progress_is_an_error(same_page_tracker: str, prefix) -> None:
    with Client("testdomain", [same_page_tracker]) as client:
        listing = client.iter_keys(prefix, page_size=2)
        with pytest.raises(ListingStalledError, match="would never end") as raised:
            list(islice(listing, 10))
    assert raised.value.after == "a/2"


def test_rename_moves_only_the_exact_key(client: Client, keys: Keys) -> None:
    """A tracker on MariaDB finds ``Photo.JPG`` for ``photo.jpg``: renaming
    ``photo.jpg`` must not move it, nor a rename onto ``photo.jpg`` replace it."""
    client.store_content(keys("Photo.JPG"), b"photo")
    client.store_content(keys("other"), b"other")
    with pytest.raises(UnknownKeyError):
        client.rename(keys("photo.jpg"), keys("moved"))
    try:
        client.rename(keys("other"), keys("photo.jpg"))
        other = keys("photo.jpg")  # a tracker that compares bytes: a free key
    except KeyExistsError:
        other = keys("other")  # one key to the tracker: taken
    assert client.get_file_data(keys("Photo.JPG")) == b"photo"
    assert client.get_file_data(other) == b"other"
    assert sorted(client.iter_keys(keys())) == sorted([keys("Photo.JPG"), other])


def test_rename_to_another_spelling_of_the_same_key(client: Client, keys: Keys) -> None:
    client.store_content(keys("Report.TXT"), b"report")
    client.rename(keys("Report.TXT"), keys("report.txt"))
    assert list(client.iter_keys(keys())) == [keys("report.txt")]
    assert client.get_file_data(keys("report.txt")) == b"report"


# Prefixes that mean something else to the tracker: LIKE wildcards (escaped
# by mogilefsd) and Perl regex characters (the tracker's check of "after").
SPECIAL_NAMES = ["100%", "a_b", "back\\slash", "a.b", "a*b", "x+y", "(p)", "[q]", "{2}", "^s", "t$", "u|v", "w?", "(R)", "B_C", "Ü.x"]  # fmt: skip


@pytest.fixture(scope="module")
def special_keys(mogile_target) -> Iterator[tuple[Keys, dict[str, list[str]]]]:
    """For each special name: 5 keys under ``<name>/``; between them and
    after them, keys under the name in swapped case and with its special
    characters as letters (what a folding database or a wildcard takes for
    the name; the indexes differ, else they would be one key on MariaDB)."""
    with Client(mogile_target.domain, mogile_target.trackers) as client:
        made = Keys(client)
        under = {
            name: [made(f"{name}/{index}") for index in (0, 2, 4, 6, 8)] for name in SPECIAL_NAMES
        }
        decoys = [
            made(f"{other}/{index}")
            for name in SPECIAL_NAMES
            for other in {name.swapcase(), "".join(c if c.isalnum() else "x" for c in name)}
            if other != name
            for index in (1, 5, 9)
        ]
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda key: client.store_content(key, b"."), [*chain(*under.values()), *decoys]
                )
            )
        yield made, under
        made.cleanup()


@pytest.mark.parametrize("page_size", [1000, 2, 1])
def test_a_prefix_of_special_characters_lists_its_keys_once(
    client: Client, special_keys, page_size: int
) -> None:
    made, under = special_keys
    for name, expected in under.items():
        listing = client.iter_keys(made(f"{name}/"), page_size=page_size)
        listed = list(islice(listing, 2 * len(expected) + 1))  # a repeating listing must end
        assert sorted(listed) == expected, name

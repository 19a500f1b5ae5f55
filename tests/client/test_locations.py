"""``Client.locate``: a location that matches one version of the file, and knows
whether the file has all the copies its class asks for.

The race tests overwrite the key for real, between the two tracker requests
of a cold read (``file_info``, then ``get_paths``); they run on the dev
MogileFS and on the real one.
"""

from __future__ import annotations

import os

import pytest

from storages_mogile.client import Client
from storages_mogile.devserver import DevCluster
from tests.conftest import Target

from .conftest import Keys, after_file_info
from .test_roundtrip import wait_for


def overwrite_after_file_info(
    monkeypatch: pytest.MonkeyPatch, reader: Client, writer: Client, key: str, new: bytes, cls: str
) -> None:
    """Make ``reader``'s next ``file_info`` of ``key`` be followed by a real overwrite."""
    overwrite = after_file_info(reader.trackers, key, lambda: writer.store_content(key, new, cls))
    monkeypatch.setattr(reader.trackers, "call", overwrite)


@pytest.fixture
def writer(mogile_target: Target):
    with Client(mogile_target.domain, mogile_target.trackers) as client:
        yield client


def test_a_cold_read_racing_an_overwrite_reads_the_new_version(
    client: Client, writer: Client, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = keys("raced")
    client.store_content(key, b"old", "thumb")
    overwrite_after_file_info(monkeypatch, client, writer, key, b"the new version", "thumb")
    assert client.get_file_data(key) == b"the new version"
    location = client.locate(key)
    assert location.fid == client.file_info(key).fid


def test_a_race_with_an_overwrite_of_the_same_length_mixes_no_versions(
    mogile_target: Target,
    writer: Client,
    keys: Keys,
    md5_class: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The old version's MD5 is never checked against the new one's bytes (which
    would also mark an intact copy damaged)."""
    key = keys("same-length")
    with Client(mogile_target.domain, mogile_target.trackers, verify_checksum=True) as reader:
        reader.store_content(key, b"old version", md5_class)
        overwrite_after_file_info(monkeypatch, reader, writer, key, b"new version", md5_class)
        assert reader.get_file_data(key) == b"new version"
        assert not any(url in reader.damaged for url in reader.get_paths(key, noverify=True))


def test_a_location_is_incomplete_until_its_class_copies_are_made(
    dev_cluster: DevCluster,
) -> None:
    client = Client("testdomain", dev_cluster.trackers)
    data = os.urandom(10_000)
    dev_cluster.nodes[1].stop()
    client.store_content("loc/avatar", data, "avatar")  # mindevcount 2: one copy for now
    client.store_content("loc/thumb", data, "thumb")  # mindevcount 1
    early = client.locate("loc/avatar")
    assert (len(early.paths), early.complete) == (1, False)
    assert client.locate("loc/thumb").complete
    dev_cluster.nodes[1].start()
    wait_for(lambda: client.file_info("loc/avatar").devcount == 2, timeout=30)
    late = client.locate("loc/avatar")
    assert (len(late.paths), late.complete) == (2, True)
    assert client.copies_wanted("avatar") == 2 and client.copies_wanted(None) == 2

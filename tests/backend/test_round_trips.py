"""Tracker round trips of a save, counted by a relay in front of the dev MogileFS.

Not under the pytest plugin's ``mogilefs`` fixture (tests/backend/test_storage.py
is): the relay is another tracker address, and the fixture would put the
storage back on the dev cluster's own tracker, around the relay.
"""

from __future__ import annotations

import uuid

import pytest
from django.core.files.base import ContentFile

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.client import Client
from tests.conftest import TEST_DOMAIN
from tests.serving.relay import CountingRelay


@pytest.mark.parametrize(("overwrite", "round_trips"), [(True, 2), (False, 4)])
def test_tracker_round_trips_of_a_save(mogile_cluster, overwrite, round_trips):
    """overwrite: create_open, create_close; without: exists, then also rename (one more).

    The first save of a client also asks for the classes' hash types
    (get_domains), kept for a minute. The warm-up meets a stored key: from
    it the client learns that the tracker compares keys byte for byte, so
    no save asks whether the tracker holds its name under another spelling.
    """
    warm_up = f"trips/{uuid.uuid4().hex}-warm-up"
    with Client(TEST_DOMAIN, mogile_cluster.trackers) as other:
        other.store_content(warm_up, b"")  # another client: its class lookup is not counted
    with CountingRelay(mogile_cluster.trackers[0]) as relay:
        storage = MogileFSStorage(trackers=[relay.address], file_overwrite=overwrite)
        assert storage.exists(warm_up)  # the connection, not the save, pays for connecting
        for extra in (1, 0):
            before = relay.requests
            name = storage.save(f"trips/{uuid.uuid4().hex}.txt", ContentFile(b"counted"))
            assert relay.requests - before == round_trips + extra
            storage.delete(name)
        storage.delete(warm_up)

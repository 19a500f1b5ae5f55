"""The tracker guard (storages_mogile.client.guard): while it is active, only its trackers.

The session's dev cluster is the allowed one; a dev cluster of the test's
own stands for a cluster no test may reach (production).
"""

from __future__ import annotations

import pytest

from storages_mogile.client import Admin, Client, ForeignTrackerError, UnknownKeyError
from storages_mogile.client.guard import only_trackers
from storages_mogile.devserver import DevCluster
from tests.conftest import TEST_DOMAIN


def test_a_list_with_one_foreign_tracker_is_refused_every_time(
    mogile_cluster: DevCluster, fault_cluster: DevCluster
) -> None:
    """Whichever tracker the pool would try first, and after a call that worked."""
    allowed, foreign = mogile_cluster.trackers[0], fault_cluster.trackers[0]
    with Client(TEST_DOMAIN, [allowed, foreign]) as client, only_trackers([allowed]):
        for _ in range(20):
            with pytest.raises(ForeignTrackerError, match=foreign):
                client.file_info("guarded/missing.txt")


def test_the_allowed_trackers_answer_and_others_do_after_the_guard(
    mogile_cluster: DevCluster, fault_cluster: DevCluster
) -> None:
    allowed, foreign = mogile_cluster.trackers[0], fault_cluster.trackers[0]
    with Client(TEST_DOMAIN, [foreign]) as outside, Client(TEST_DOMAIN, [allowed]) as inside:
        with only_trackers([allowed]):
            with pytest.raises(UnknownKeyError):
                inside.file_info("guarded/missing.txt")
            with pytest.raises(ForeignTrackerError):
                outside.store_content("guarded/leak.txt", b"leak")
            with pytest.raises(ForeignTrackerError):
                Admin([foreign]).create_domain("intruder")
        assert outside.list_keys("guarded/") == []  # reachable again, and nothing stored
        assert "intruder" not in Admin([foreign]).get_domains()


def test_an_address_compares_as_spelled(mogile_cluster: DevCluster) -> None:
    port = mogile_cluster.trackers[0].rpartition(":")[2]
    with only_trackers([f"127.0.0.1:{port}"]):
        Client(TEST_DOMAIN, [f"127.0.0.1:{port}"]).list_keys("guarded/")
        with pytest.raises(ForeignTrackerError, match=f"localhost:{port}"):
            Client(TEST_DOMAIN, [f"localhost:{port}"]).list_keys("guarded/")


def test_the_guard_does_not_nest(mogile_cluster: DevCluster) -> None:
    with only_trackers(mogile_cluster.trackers):
        with pytest.raises(RuntimeError, match="does not nest"), only_trackers(["10.0.0.1:7001"]):
            pass
        Client(TEST_DOMAIN, mogile_cluster.trackers).list_keys("guarded/")  # still the first

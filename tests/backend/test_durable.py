"""Durable saves: ``min_copies`` makes save() return only once the tracker counts the copies."""

from __future__ import annotations

import logging
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile

from storages_mogile import mogile_storage
from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.client import NoPathsError, NotDurableError
from storages_mogile.devserver import DevCluster
from tests.conftest import TEST_DOMAIN, Target

ROUNDS = 10


def on(trackers: list[str], domain: str = TEST_DOMAIN, **options: object) -> MogileFSStorage:
    return MogileFSStorage(domain=domain, trackers=trackers, **options)


def read(storage: MogileFSStorage, name: str) -> bytes:
    with storage.open(name) as opened:
        return opened.read()


def node_of_first_copy(cluster: DevCluster, storage: MogileFSStorage, name: str):  # type: ignore[no-untyped-def]
    url = storage.client.get_paths(storage.key_for(name), noverify=True)[0]
    return next(node for node in cluster.nodes if url.startswith(node.url + "/"))


def test_with_min_copies_a_node_lost_right_after_save_loses_nothing(
    dev_cluster: DevCluster,
) -> None:
    storage = on(dev_cluster.trackers, mogile_class="avatar", min_copies=2, path_cache=None)
    for round_ in range(ROUNDS):
        name = storage.save(f"durable/{round_}.bin", ContentFile(b"kept %d" % round_))
        lost = node_of_first_copy(dev_cluster, storage, name)
        lost.stop()  # right after save() returned
        try:
            assert read(storage, name) == b"kept %d" % round_  # from the other node
        finally:
            lost.start()


def test_without_min_copies_the_only_copy_can_be_lost(dev_cluster: DevCluster) -> None:
    """What happens without it: save() returns with one copy (replication follows); a
    node lost at once takes the file with it, at least until the node comes back."""
    storage = on(dev_cluster.trackers, mogile_class="avatar", path_cache=None)
    lost_reads = 0
    for round_ in range(ROUNDS):
        name = storage.save(f"fragile/{round_}.bin", ContentFile(b"fragile"))
        lost = node_of_first_copy(dev_cluster, storage, name)
        lost.stop()
        try:
            read(storage, name)
        except NoPathsError:
            lost_reads += 1
        finally:
            lost.start()
    assert lost_reads > 0  # the dev cluster replicates every 0.2 s: most saves are caught


def test_a_class_that_cannot_reach_the_copies_fails_or_logs(
    dev_cluster: DevCluster, caplog: pytest.LogCaptureFixture
) -> None:
    strict = on(dev_cluster.trackers, mogile_class="avatar", min_copies=3, min_copies_timeout=0.5)
    with pytest.raises(NotDurableError, match="1 of the 3 copies|2 of the 3 copies") as caught:
        strict.save("three/strict.bin", ContentFile(b"x"))
    assert strict.exists(caught.value.key.removeprefix(strict.key_prefix))  # stays stored
    lenient = on(
        dev_cluster.trackers,
        mogile_class="avatar",
        min_copies=3,
        min_copies_timeout=0.5,
        min_copies_action="log",
    )
    with caplog.at_level(logging.WARNING, logger="storages_mogile"):
        name = lenient.save("three/lenient.bin", ContentFile(b"y"))
    assert read(lenient, name) == b"y"
    assert any("of the 3 copies" in record.getMessage() for record in caplog.records)


def test_min_copies_is_checked_and_reaches_fields_through_the_factory() -> None:
    with pytest.raises(ImproperlyConfigured, match="min_copies"):
        MogileFSStorage(min_copies=0)
    with pytest.raises(ImproperlyConfigured, match="min_copies_action"):
        MogileFSStorage(min_copies_action="ignore")
    field_storage = mogile_storage(klass="avatar", min_copies=2)
    assert field_storage.min_copies == 2
    assert field_storage.deconstruct()[2] == {"mogile_class": "avatar", "min_copies": 2}


def test_saved_with_min_copies_means_that_many_copies(mogile_target: Target) -> None:
    """On the real MogileFS too: replication there takes seconds, not 0.2 s."""
    storage = on(
        mogile_target.trackers, domain=mogile_target.domain, mogile_class="avatar", min_copies=2
    )
    name = storage.save(f"durable-{uuid.uuid4().hex}.bin", ContentFile(b"replicated"))
    try:
        assert storage.client.file_info(storage.key_for(name)).devcount >= 2
    finally:
        storage.delete(name)

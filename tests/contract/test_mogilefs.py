"""The Storage contract against MogileFSStorage on the dev MogileFS."""

from __future__ import annotations

import pytest

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.devserver import DevCluster
from storages_mogile.testing import Capabilities, StorageContract
from tests.conftest import TEST_DOMAIN

# MogileFS keeps no creation or access times; everything else is there.
MOGILEFS = Capabilities(created_time=False, accessed_time=False)


def mogilefs_storage(cluster: DevCluster, **options) -> MogileFSStorage:
    return MogileFSStorage(
        domain=TEST_DOMAIN, trackers=cluster.trackers, base_url="/mogilefs/", **options
    )


class TestMogileFSStorage(StorageContract):
    capabilities = MOGILEFS

    @pytest.fixture
    def storage(self, mogile_cluster: DevCluster) -> MogileFSStorage:
        return mogilefs_storage(mogile_cluster)


class TestMogileFSStorageOverwrite(StorageContract):
    capabilities = Capabilities(overwrite=True, created_time=False, accessed_time=False)

    @pytest.fixture
    def storage(self, mogile_cluster: DevCluster) -> MogileFSStorage:
        return mogilefs_storage(mogile_cluster, file_overwrite=True)


class TestMogileFSStorageWithClass(StorageContract):
    capabilities = MOGILEFS

    @pytest.fixture
    def storage(self, mogile_cluster: DevCluster) -> MogileFSStorage:
        return mogilefs_storage(mogile_cluster, mogile_class="avatar", key_prefix="site/")

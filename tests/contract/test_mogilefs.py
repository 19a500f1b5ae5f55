"""The Storage contract against MogileFSStorage on the MogileFS under test (dev or real)."""

from __future__ import annotations

import pytest

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.testing import Capabilities, StorageContract
from tests.conftest import Target

# MogileFS keeps no creation or access times; everything else is there.
MOGILEFS = Capabilities(created_time=False, accessed_time=False)


def mogilefs_storage(target: Target, **options) -> MogileFSStorage:
    return MogileFSStorage(
        domain=target.domain, trackers=target.trackers, base_url="/mogilefs/", **options
    )


class TestMogileFSStorage(StorageContract):
    capabilities = MOGILEFS

    @pytest.fixture
    def storage(self, mogile_target: Target) -> MogileFSStorage:
        return mogilefs_storage(mogile_target)


class TestMogileFSStorageOverwrite(StorageContract):
    capabilities = Capabilities(overwrite=True, created_time=False, accessed_time=False)

    @pytest.fixture
    def storage(self, mogile_target: Target) -> MogileFSStorage:
        return mogilefs_storage(mogile_target, file_overwrite=True)


class TestMogileFSStorageWithClass(StorageContract):
    capabilities = MOGILEFS

    @pytest.fixture
    def storage(self, mogile_target: Target) -> MogileFSStorage:
        return mogilefs_storage(mogile_target, mogile_class="avatar", key_prefix="site/")

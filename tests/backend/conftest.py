"""Fixtures for the storage backend tests: settings pointing at the dev cluster."""

from __future__ import annotations

import pytest

from storages_mogile.devserver import DevCluster
from tests.conftest import TEST_DOMAIN


@pytest.fixture
def mogile_settings(settings, mogile_cluster: DevCluster):
    """Django settings whose MOGILEFS_* point at the session's dev cluster."""
    settings.MOGILEFS_DOMAIN = TEST_DOMAIN
    settings.MOGILEFS_TRACKERS = mogile_cluster.trackers
    settings.MOGILEFS_MEDIA_URL = "/mogilefs/"
    return settings

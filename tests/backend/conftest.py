"""Fixtures for the storage backend tests: the package's own pytest plugin at work.

``mogilefs`` (storages_mogile.pytest_plugin) points every MogileFS storage at
the session's dev cluster (tests/conftest.py hands the plugin that cluster)
under a key prefix of the test's own, and cleans it up afterwards.
"""

from __future__ import annotations

import pytest

from storages_mogile.devserver import DevCluster


@pytest.fixture
def mogile_settings(mogilefs: DevCluster, settings):
    """Django settings whose MogileFS storages use the session's dev cluster.

    ``mogilefs`` comes first: settings overrides must be undone in the
    reverse order they were made, and pytest tears fixtures down that way.
    """
    settings.MOGILEFS_MEDIA_URL = "/mogilefs/"
    return settings

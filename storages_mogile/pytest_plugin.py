"""pytest plugin: a dev MogileFS for a project's own tests, in two lines.

Installed with the package (entry point ``pytest11``), it adds two fixtures:

* ``mogilefs_dev_cluster`` (session): an embedded dev MogileFS (one tracker,
  two storage nodes) with the domain of the project's settings and the
  classes of ``MOGILEFS_CLASSES`` (copies and hash types);
* ``mogilefs`` (per test): puts every MogileFS storage of the project on
  it, whatever trackers, domain and key prefix the storage names (the
  ``STORAGES`` entries, every ``mogile_storage()`` field, storages built
  during the test), under a key prefix of the test's own, and deletes what
  the test stored afterwards. While it is active no tracker connection of
  the process may leave the dev cluster: a Client or Admin made for other
  trackers fails the test with ForeignTrackerError. It yields the cluster.

A project's tests then need only::

    pytestmark = pytest.mark.usefixtures("mogilefs")

It needs Django settings when the fixtures are used, and nothing else: the
plugin does not depend on pytest-django.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

DEFAULT_DOMAIN = "testdomain"
DEFAULT_CLASSES = {"avatar": 2, "thumb": 1}


@pytest.fixture(scope="session")
def mogilefs_dev_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A dev MogileFS for the session, set up with the project's domain and classes."""
    from storages_mogile.client import Admin
    from storages_mogile.devserver import DevCluster

    domain, classes = _project_domain()
    copies = {name: declared.copies for name, declared in classes.items()}
    cluster = DevCluster(tmp_path_factory.mktemp("mogilefs"), domains={domain: copies})
    cluster.start()
    with Admin(cluster.trackers) as admin:
        for name, declared in classes.items():
            if declared.hashtype is not None:
                admin.update_class(domain, name, declared.copies, hashtype=declared.hashtype)
    yield cluster
    cluster.stop()


@pytest.fixture
def mogilefs(mogilefs_dev_cluster: Any) -> Iterator[Any]:
    """Every MogileFS storage of the project on the dev MogileFS, under a fresh key prefix,
    and no tracker but its own reachable."""
    from storages_mogile.backends.redirect import redirect_storages
    from storages_mogile.client.guard import only_trackers

    domain, _ = _project_domain()
    prefix = f"test-{uuid.uuid4().hex[:12]}/"
    trackers = list(mogilefs_dev_cluster.trackers)
    with only_trackers(trackers):
        with redirect_storages(trackers, domain, prefix):
            yield mogilefs_dev_cluster
        _delete_keys(trackers, domain, prefix)


def _delete_keys(trackers: list[str], domain: str, prefix: str) -> None:
    """Delete every key under ``prefix``: what a test stored."""
    from storages_mogile.client import Client, UnknownKeyError

    with Client(domain, trackers) as client:
        for key in list(client.iter_keys(prefix)):
            try:
                client.delete(key)
            except UnknownKeyError:
                pass  # deleted by the test meanwhile


def _project_domain() -> tuple[str, dict[str, Any]]:
    """The domain the project names (its MogileFS STORAGES entry, or MOGILEFS_DOMAIN),
    and the classes it declares (DeclaredClass by name)."""
    from django.conf import settings

    from storages_mogile.backends.mogile import mogilefs_aliases
    from storages_mogile.clusters import DeclaredClass, declared_classes

    domain = getattr(settings, "MOGILEFS_DOMAIN", None)
    for alias in mogilefs_aliases():
        domain = settings.STORAGES[alias].get("OPTIONS", {}).get("domain", domain)
    classes = declared_classes() or {
        name: DeclaredClass(copies) for name, copies in DEFAULT_CLASSES.items()
    }
    return domain or DEFAULT_DOMAIN, classes

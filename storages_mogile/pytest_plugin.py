"""pytest plugin: a dev MogileFS for a project's own tests, in two lines.

Installed with the package (entry point ``pytest11``), it adds two fixtures:

* ``mogilefs_dev_cluster`` (session): an embedded dev MogileFS (one tracker,
  two storage nodes) with the domain of the project's settings and the
  classes of ``MOGILEFS_CLASSES`` (copies and hash types);
* ``mogilefs`` (per test): points every MogileFS storage of the project at
  it (the ``MOGILEFS_*`` settings, the OPTIONS of each MogileFS entry in
  ``STORAGES``, and so every ``mogile_storage()`` field), under a key prefix
  of the test's own, and deletes what the test stored afterwards. It yields
  the cluster.

A project's tests then need only::

    pytestmark = pytest.mark.usefixtures("mogilefs")

Settings overrides must be undone in the reverse order they were made: a
test that also takes pytest-django's ``settings`` fixture should name
``mogilefs`` first (``usefixtures`` does that by itself).

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
    """Every MogileFS storage of the project on the dev MogileFS, under a fresh key prefix."""
    from django.test import override_settings

    from storages_mogile.client import Client, UnknownKeyError

    domain, _ = _project_domain()
    prefix = f"test-{uuid.uuid4().hex[:12]}/"
    trackers = list(mogilefs_dev_cluster.trackers)
    with override_settings(**_pointed_settings(trackers, domain, prefix)):
        yield mogilefs_dev_cluster
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


def _pointed_settings(trackers: list[str], domain: str, prefix: str) -> dict[str, Any]:
    """Settings that send every MogileFS storage to ``trackers``, ``domain`` and ``prefix``."""
    from django.conf import settings

    from storages_mogile.backends.mogile import mogilefs_aliases

    pointed: dict[str, Any] = {
        "MOGILEFS_TRACKERS": trackers,
        "MOGILEFS_DOMAIN": domain,
        "MOGILEFS_KEY_PREFIX": prefix + getattr(settings, "MOGILEFS_KEY_PREFIX", ""),
    }
    aliases = mogilefs_aliases()
    if aliases:  # STORAGES is left alone otherwise
        storages = {alias: dict(entry) for alias, entry in settings.STORAGES.items()}
        for alias in aliases:
            options = dict(storages[alias].get("OPTIONS", {}))
            options.update(trackers=trackers, domain=domain)
            options["key_prefix"] = prefix + options.get("key_prefix", "")
            storages[alias]["OPTIONS"] = options
        pointed["STORAGES"] = storages
    return pointed

"""The pytest plugin (storages_mogile.pytest_plugin) from a scratch project: no conftest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from storages_mogile.client import Client
from storages_mogile.devserver import DevCluster

SETTINGS = """
SECRET_KEY = "plugin-test"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
STORAGES = {
    "default": {
        "BACKEND": "storages_mogile.backends.mogile.MogileFSStorage",
        "OPTIONS": {"domain": "media", "trackers": ["192.0.2.1:7001"]},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MOGILEFS_CLASSES = {"avatar": 2, "original": {"copies": 1, "hashtype": "MD5"}}
"""

TESTS = """
import hashlib

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from storages_mogile import mogile_storage

pytestmark = pytest.mark.usefixtures("mogilefs")


def test_default_storage_saves_and_reads():
    name = default_storage.save("hello.txt", ContentFile(b"hello"))
    with default_storage.open(name) as stored:
        assert stored.read() == b"hello"


def test_a_field_storage_with_its_class(mogilefs):
    storage = mogile_storage(klass="avatar")
    name = storage.save("avatar.png", ContentFile(b"png"))
    assert storage.client.file_info(storage.key_for(name)).cls == "avatar"
    assert storage.domain == "media" and storage._trackers == tuple(mogilefs.trackers)


def test_declared_hash_types_are_set_up():
    storage = mogile_storage(klass="original")
    name = storage.save("photo.jpg", ContentFile(b"jpeg"))
    assert storage.client.file_info(storage.key_for(name)).md5 == hashlib.md5(b"jpeg").hexdigest()


def test_each_test_has_its_own_keys():
    assert not default_storage.exists("hello.txt")  # the first test's file is gone
"""


def run_scratch_tests(project: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    """pytest on ``project``'s test files, with its settings and no MOGILEFS_TEST_* variables."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("MOGILEFS_TEST")}
    clean.update(DJANGO_SETTINGS_MODULE="scratch_settings", PYTHONPATH=str(project), **environment)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_scratch_project_uses_mogilefs_in_two_lines(tmp_path: Path) -> None:
    (tmp_path / "scratch_settings.py").write_text(SETTINGS)
    (tmp_path / "test_scratch.py").write_text(TESTS)
    result = run_scratch_tests(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


# A project whose storages name their own trackers (a "production" cluster),
# domains and key prefixes: fields built at import time, a STORAGES entry.
ISOLATED_SETTINGS = """
import os

PRODUCTION = os.environ["PRODUCTION_TRACKERS"].split(",")
SECRET_KEY = "plugin-test"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "scratchapp"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
STORAGES = {
    "default": {
        "BACKEND": "storages_mogile.backends.mogile.MogileFSStorage",
        "OPTIONS": {"domain": "media", "trackers": PRODUCTION, "file_overwrite": True},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MOGILEFS_CLASSES = {"avatar": 2}
"""

ISOLATED_MODELS = """
from django.conf import settings
from django.db import models

from storages_mogile import mogile_storage


class Document(models.Model):
    prefixed = models.FileField(storage=mogile_storage(klass="avatar", key_prefix="docs/"))
    elsewhere = models.FileField(storage=mogile_storage(trackers=settings.PRODUCTION))
    archived = models.FileField(
        storage=mogile_storage(trackers=settings.PRODUCTION, domain="archive", file_overwrite=True)
    )
"""

ISOLATED_TESTS = """
import threading

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from scratchapp.models import Document
from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.client import Admin, Client

PRODUCTION = settings.PRODUCTION
EARLY = Client("media", PRODUCTION)  # a client of the project's own, made at import


def field(name):
    return Document._meta.get_field(name).storage


def stored_on(trackers, key, domain="media"):
    with Client(domain, trackers) as client:
        return client.get_file_data(key)


def test_before_the_fixture_a_client_of_its_own_reaches_its_cluster():
    assert EARLY.list_keys("") == []  # its tracker connection is open now


@pytest.mark.usefixtures("mogilefs")
def test_a_field_prefix_lies_under_the_test_prefix(mogilefs):
    storage = field("prefixed")
    assert storage.save("report.txt", ContentFile(b"first")) == "report.txt"
    key = storage.key_for("report.txt")
    assert key.startswith("test-") and key.endswith("/docs/report.txt")
    assert stored_on(mogilefs.trackers, key) == b"first"


@pytest.mark.usefixtures("mogilefs")
def test_a_field_prefix_does_not_show_another_test_files():
    storage = field("prefixed")
    assert not storage.exists("report.txt")
    assert storage.save("report.txt", ContentFile(b"second")) == "report.txt"


def test_a_field_with_its_own_trackers_writes_to_the_dev_cluster(mogilefs):
    storage = field("elsewhere")
    name = storage.save("field.txt", ContentFile(b"field"))
    assert storage._trackers == tuple(mogilefs.trackers)
    assert stored_on(mogilefs.trackers, storage.key_for(name)) == b"field"


def test_a_storages_entry_and_a_new_storage_write_to_the_dev_cluster(mogilefs):
    default_storage.save("entry.txt", ContentFile(b"entry"))
    built = MogileFSStorage(trackers=PRODUCTION, domain="media", key_prefix="built/")
    built.save("built.txt", ContentFile(b"built"))
    assert stored_on(mogilefs.trackers, default_storage.key_for("entry.txt")) == b"entry"
    assert stored_on(mogilefs.trackers, built.key_for("built.txt")) == b"built"


def test_storages_changed_by_settings_during_the_test_stay_on_the_dev_cluster(settings, mogilefs):
    settings.MOGILEFS_TRACKERS = PRODUCTION
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages_mogile.backends.mogile.MogileFSStorage",
            "OPTIONS": {"domain": "media", "trackers": PRODUCTION, "key_prefix": "late/"},
        },
    }
    default_storage.save("late.txt", ContentFile(b"late"))
    MogileFSStorage().save("plain.txt", ContentFile(b"plain"))
    assert stored_on(mogilefs.trackers, default_storage.key_for("late.txt")) == b"late"
    assert stored_on(mogilefs.trackers, MogileFSStorage().key_for("plain.txt")) == b"plain"


def test_a_field_with_its_own_domain_keeps_its_own_key_space(mogilefs):
    archived = field("archived")
    archived.save("same.txt", ContentFile(b"archive"))
    default_storage.save("same.txt", ContentFile(b"media"))
    assert archived.open("same.txt").read() == b"archive"
    assert default_storage.open("same.txt").read() == b"media"
    assert archived.domain == "media" and "/archive/" in archived.key_for("same.txt")
    assert stored_on(mogilefs.trackers, archived.key_for("same.txt")) == b"archive"


def test_threads_of_the_test_stay_on_the_dev_cluster(mogilefs):
    saved = []
    thread = threading.Thread(
        target=lambda: saved.append(field("elsewhere").save("thread.txt", ContentFile(b"t")))
    )
    thread.start()
    thread.join()
    assert stored_on(mogilefs.trackers, field("elsewhere").key_for(saved[0])) == b"t"


def test_a_client_for_other_trackers_fails_the_test_with_the_reason(mogilefs):
    from storages_mogile.client import ForeignTrackerError

    with pytest.raises(ForeignTrackerError, match=PRODUCTION[0]) as refused:
        Client("media", PRODUCTION).store_content("leak.txt", b"leak")
    assert "mogilefs" in str(refused.value) and "storage.client" in str(refused.value)
    with pytest.raises(ForeignTrackerError):
        EARLY.store_content("early.txt", b"early")  # a connection opened before the test
    with pytest.raises(ForeignTrackerError):
        Admin(PRODUCTION).create_domain("intruder")
    errors = []

    def in_a_thread():
        try:
            Client("media", PRODUCTION).store_content("thread.txt", b"leak")
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert [type(error) for error in errors] == [ForeignTrackerError]


def test_a_storage_that_builds_its_own_client_fails_the_test(mogilefs):
    from storages_mogile.client import ForeignTrackerError

    class Hardwired(MogileFSStorage):
        @property
        def client(self):
            return Client("media", PRODUCTION)

    with pytest.raises(ForeignTrackerError, match=PRODUCTION[0]):
        Hardwired().save("hardwired.txt", ContentFile(b"leak"))


def test_after_the_fixture_storages_have_their_own_options_again(mogilefs_dev_cluster):
    with Client("media", mogilefs_dev_cluster.trackers) as dev:
        assert dev.list_keys("") == []  # every test's files deleted, whatever their storage
    assert field("elsewhere")._trackers == tuple(PRODUCTION)
    assert field("prefixed").key_prefix == "docs/"
    assert field("archived").domain == "archive" and field("archived").key_prefix == ""
    assert default_storage._trackers == tuple(PRODUCTION) and default_storage.key_prefix == ""
    assert EARLY.list_keys("") == []  # the project's own cluster is reachable again
"""


def test_nothing_leaves_the_dev_cluster_and_each_test_sees_its_own_files(tmp_path: Path) -> None:
    """Storages naming a "production" cluster, domain and key prefix of their own:
    during a test they all land on the plugin's dev cluster under the test's prefix;
    "production" receives nothing."""
    production = DevCluster(
        tmp_path / "production", domains={"media": {"avatar": 2}, "archive": {}}
    ).start()
    try:
        project = tmp_path / "project"
        (project / "scratchapp").mkdir(parents=True)
        (project / "scratchapp" / "__init__.py").write_text("")
        (project / "scratchapp" / "models.py").write_text(ISOLATED_MODELS)
        (project / "scratch_settings.py").write_text(ISOLATED_SETTINGS)
        (project / "test_isolated.py").write_text(ISOLATED_TESTS)
        result = run_scratch_tests(project, PRODUCTION_TRACKERS=",".join(production.trackers))
        for domain in ("media", "archive"):
            with Client(domain, production.trackers) as client:
                leaked = list(client.iter_keys())
            assert leaked == [], f"written to production {domain}:\n{result.stdout}"
        assert result.returncode == 0, result.stdout + result.stderr
        assert "11 passed" in result.stdout
    finally:
        production.stop()

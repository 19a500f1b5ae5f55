"""The pytest plugin (storages_mogile.pytest_plugin) from a scratch project: no conftest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def test_a_scratch_project_uses_mogilefs_in_two_lines(tmp_path: Path) -> None:
    (tmp_path / "scratch_settings.py").write_text(SETTINGS)
    (tmp_path / "test_scratch.py").write_text(TESTS)
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("MOGILEFS_TEST")
    }
    environment.update(DJANGO_SETTINGS_MODULE="scratch_settings", PYTHONPATH=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_scratch.py"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout

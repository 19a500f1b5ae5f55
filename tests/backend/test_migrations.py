"""makemigrations and migrate on a model whose fields use mogile_storage(klass=...)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from storages_mogile.client import Client
from tests.conftest import TEST_DOMAIN

ROOT = Path(__file__).resolve().parents[2]

SAVE_AN_AVATAR = """
import io
from PIL import Image
from django.core.files.base import ContentFile
from tests.avatars.models import Avatar
buffer = io.BytesIO()
Image.new("RGB", (3, 2), "red").save(buffer, "PNG")
avatar = Avatar(name="ann")
avatar.image.save("ann.png", ContentFile(buffer.getvalue()), save=True)
print(Avatar.objects.get().image.name, avatar.image.width, avatar.image.height)
"""


def django_admin(workdir: Path, trackers: list[str], *args: str) -> str:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.avatars.settings",
        "AVATARS_WORKDIR": str(workdir),
        "MOGILEFS_TEST_TRACKERS": ",".join(trackers),
        "PYTHONPATH": os.pathsep.join([str(workdir), str(ROOT)]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,  # the assert below shows stderr
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_makemigrations_writes_only_the_class_and_migrate_runs(tmp_path, mogile_cluster):
    pytest.importorskip("PIL")
    trackers = mogile_cluster.trackers
    (tmp_path / "avatars_migrations").mkdir()
    (tmp_path / "avatars_migrations" / "__init__.py").write_text("")

    django_admin(tmp_path, trackers, "makemigrations", "avatars")
    migration = (tmp_path / "avatars_migrations" / "0001_initial.py").read_text()
    assert "import storages_mogile.backends.mogile" in migration
    assert "storages_mogile.backends.mogile.MogileFSStorage(mogile_class='avatar')" in migration
    assert "storages_mogile.backends.mogile.MogileFSStorage(mogile_class='thumb')" in migration
    for leaked in (TEST_DOMAIN, trackers[0], "trackers", "domain"):
        assert leaked not in migration

    django_admin(tmp_path, trackers, "migrate", "--no-input")
    output = django_admin(tmp_path, trackers, "shell", "-c", SAVE_AN_AVATAR)
    stored_name, width, height = output.splitlines()[-1].split()
    assert stored_name.startswith("avatars/ann") and (width, height) == ("3", "2")
    info = Client(TEST_DOMAIN, trackers).file_info(stored_name)
    assert info.cls == "avatar"

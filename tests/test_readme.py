"""The README's quick start, run as written: a project built from its snippets, on a dev MogileFS.

The settings, urls and models snippets are taken from README.md itself
(only the example tracker addresses are swapped for the dev cluster's), put
into a new project, and driven the way a new user would: ``check``,
``mogilefs_setup``, ``makemigrations``, ``migrate``, an upload through a
view, and the file served back at its URL.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from storages_mogile.devserver import DevCluster

ROOT = Path(__file__).resolve().parents[1]
README_TRACKERS = '["10.0.0.1:7001", "10.0.0.2:7001"]'

BASE_SETTINGS = """
SECRET_KEY = "readme-test"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True
ROOT_URLCONF = "site_urls"
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.staticfiles", "quick"]
STATIC_URL = "/static/"
"""

UPLOAD_VIEW = """
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from quick.models import Avatar


@csrf_exempt
def upload(request):
    avatar = Avatar.objects.create(image=request.FILES["image"], thumb=request.FILES["image"])
    return HttpResponse(avatar.image.url)
"""

DRIVE = """
import django
django.setup()
from django.test import Client
from quick.models import Avatar

client = Client()
with open("avatar.png", "rb") as image:
    url = client.post("/upload/", {"image": image}).content.decode()
served = client.get(url)
body = b"".join(served.streaming_content) if served.streaming else served.content
with open("avatar.png", "rb") as image:
    assert body == image.read(), (served.status_code, len(body))
avatar = Avatar.objects.get()
print("served", url, len(body), avatar.image.storage.mogile_class, avatar.thumb.storage.mogile_class)
"""


def readme_snippets() -> dict[str, str]:
    """The quick start's settings.py, urls.py and models.py parts, as written."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = text.split("## Quick start", 1)[1]
    block = re.search(r"```python\n(.*?)```", quick_start, re.DOTALL)
    assert block, "README's quick start has no python block"
    parts = re.split(
        r"^# (settings\.py|urls\.py|models\.py).*$", block.group(1), flags=re.MULTILINE
    )
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def png(path: Path) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (200, 40, 90)).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())


def test_the_quick_start_runs_as_written(tmp_path: Path) -> None:
    snippets = readme_snippets()
    assert README_TRACKERS in snippets["settings.py"], "the README's trackers changed"
    project = tmp_path / "project"
    (project / "quick").mkdir(parents=True)
    with DevCluster(tmp_path / "mogile", domains={}) as cluster:  # no domain: setup makes it
        trackers = repr(cluster.trackers)
        settings = BASE_SETTINGS.format(db=str(tmp_path / "db.sqlite3"))
        settings += snippets["settings.py"].replace(README_TRACKERS, trackers)
        (project / "site_settings.py").write_text(settings)
        urls = "from django.urls import include, path\n\nfrom quick.views import upload\n\n"
        urls += 'urlpatterns = [path("upload/", upload)]\n' + snippets["urls.py"]
        (project / "site_urls.py").write_text(urls)
        (project / "quick" / "__init__.py").write_text("")
        models = "from django.db import models\n" + snippets["models.py"]
        (project / "quick" / "models.py").write_text(models)
        (project / "quick" / "views.py").write_text(UPLOAD_VIEW)
        png(project / "avatar.png")

        def run(*args: str) -> str:
            environment = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "site_settings",
                "PYTHONPATH": str(project),
            }
            result = subprocess.run(
                [sys.executable, *args],
                cwd=project,
                env=environment,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
            return result.stdout + result.stderr

        manage = ["-m", "django"]
        assert "no issues" in run(*manage, "check")
        assert "domain media: created" in run(*manage, "mogilefs_setup")
        assert "class media/avatar (2 copies): exists" in run(*manage, "mogilefs_setup")
        assert "no issues" in run(*manage, "check", "--deploy", "--tag", "mogilefs")
        run(*manage, "makemigrations", "quick")
        migration = (project / "quick" / "migrations" / "0001_initial.py").read_text()
        assert "MogileFSStorage(mogile_class='avatar')" in migration
        assert "7001" not in migration  # no trackers recorded
        run(*manage, "migrate")
        served = run("-c", DRIVE)
        assert "served /mogilefs/" in served and served.rstrip().endswith("avatar thumb")


@pytest.fixture(autouse=True)
def _pillow() -> None:
    pytest.importorskip("PIL")

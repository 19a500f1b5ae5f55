"""The README's quick start, run as written, on a fresh ``django-admin startproject``.

The project and the app are made the way the README says (``startproject
mysite``, ``startapp avatars``); each part of the quick start's python block
is added, every line as written, at the end of the file its header names
(only the example tracker addresses are swapped for a dev cluster's); then
the README's commands run, a file is uploaded through a view, and served
back at its URL. The test brings nothing of its own into the project but
that upload view, so a missing import or setting in the README fails here.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from storages_mogile.devserver import DevCluster

ROOT = Path(__file__).resolve().parents[1]
README_TRACKERS = '["10.0.0.1:7001", "10.0.0.2:7001"]'
PROJECT, APP = "mysite", "avatars"
# where each part of the python block goes, by the file name its header names
TARGETS = {"settings.py": f"{PROJECT}/settings.py", "urls.py": f"{PROJECT}/urls.py", "models.py": f"{APP}/models.py"}  # fmt: skip

# The test's own harness: a view to upload through, and a client to drive it.
UPLOAD_VIEW = """
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from avatars.models import Avatar


@csrf_exempt
def upload(request):
    avatar = Avatar.objects.create(image=request.FILES["image"], thumb=request.FILES["image"])
    return HttpResponse(avatar.image.url)
"""
UPLOAD_URL = """
from avatars.views import upload

urlpatterns += [path("upload/", upload)]
"""
DRIVE = """
import django
django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
from avatars.models import Avatar

setup_test_environment()  # the test client's host, "testserver", is allowed
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


def quick_start() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("## Quick start", 1)[1].split("\n## ", 1)[0]


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", quick_start(), re.DOTALL)


def python_parts() -> dict[str, str]:
    """The python block's parts, by the file name their ``# .../NAME.py`` header names."""
    blocks = code_blocks("python")
    assert len(blocks) == 1, "the README's quick start should have one python block"
    parts = re.split(
        r"^# (?:\S+/)?(settings\.py|urls\.py|models\.py)\b.*$", blocks[0], flags=re.MULTILINE
    )
    assert not parts[0].strip(), f"code before the first file header: {parts[0]!r}"
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def commands() -> list[str]:
    """The lines of the shell block that follows the python block (the setup commands)."""
    after = quick_start().split("```python\n", 1)[1].split("```", 1)[1]
    block = re.search(r"```sh\n(.*?)```", after, re.DOTALL)
    assert block, "no commands after the README's python block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def png(path: Path) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (200, 40, 90)).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())


class Shell:
    """Runs commands as a user would, with this interpreter's ``python`` and ``django-admin``."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        bin_dir = Path(sys.executable).parent
        inherited = {
            k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")
        }
        self.environment = {
            **inherited,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def __call__(self, command: str) -> str:
        result = subprocess.run(
            ["bash", "-ec", command], cwd=self.cwd, env=self.environment,
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
        return result.stdout + result.stderr


def test_the_quick_start_runs_as_written(tmp_path: Path) -> None:
    parts = python_parts()
    assert set(parts) == set(TARGETS), f"the python block's files: {sorted(parts)}"
    assert README_TRACKERS in parts["settings.py"], "the README's trackers changed"
    Shell(tmp_path)(f"python -m django startproject {PROJECT}")
    site = tmp_path / PROJECT
    shell = Shell(site)
    shell(f"python manage.py startapp {APP}")
    with DevCluster(tmp_path / "mogile", domains={}) as cluster:  # no domain: setup makes it
        parts["settings.py"] = parts["settings.py"].replace(README_TRACKERS, repr(cluster.trackers))
        for name, target in TARGETS.items():
            with (site / target).open("a") as module:
                module.write(parts[name])
        with (site / TARGETS["urls.py"]).open("a") as urls:
            urls.write(UPLOAD_URL)
        (site / APP / "views.py").write_text(UPLOAD_VIEW)
        png(site / "avatar.png")

        assert "no issues" in shell("python manage.py check")
        outputs = [shell(command) for command in commands()]
        joined = "\n".join(outputs)
        assert "domain media: created" in joined
        assert "class media/avatar (2 copies): created" in joined
        migration = (site / APP / "migrations" / "0001_initial.py").read_text()
        assert "MogileFSStorage(mogile_class='avatar')" in migration
        assert "7001" not in migration  # no trackers recorded
        served = shell(f"DJANGO_SETTINGS_MODULE={PROJECT}.settings python -c {shlex.quote(DRIVE)}")
        assert "served /mogilefs/" in served and served.rstrip().endswith("avatar thumb")


def test_the_quick_start_names_what_it_needs() -> None:
    text = quick_start()
    assert f"startproject {PROJECT}" in text and f"startapp {APP}" in text
    install = code_blocks("sh")[0]
    lines = [line for line in install.splitlines() if line.startswith("pip install")]
    assert lines and "Pillow" in lines[0] and "django-storages" in lines[0]
    assert "/path/to/storages-mogile" in lines[0], "installs from a checkout today"
    assert "pip install django-storages Pillow storages-mogile" in install, "the index line is kept"


@pytest.fixture(autouse=True)
def _pillow() -> None:
    pytest.importorskip("PIL")

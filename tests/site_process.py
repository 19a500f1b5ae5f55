"""A site in a process of its own, saving while a test audits or imports.

Run by :func:`start` with ``tests.site_settings`` (MogileFS as the default
storage, rows in a database file); it prints, as JSON lines, the content
each name it saved must hold at the end:

* ``rows SECONDS [ADOPT ...]``: for SECONDS, saves new files with their
  rows, saves new versions of the file its first row refers to, and makes
  rows for the names ADOPT (files uploaded earlier, orphans until then); it
  also prints the names it adopted too late (moved to the quarantine before
  their row was made);
* ``uploads NAME ...``: prints ``ready``, then saves a user's upload under
  each name (or, when the name is taken, under the name the storage gives
  it instead).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent


def start(
    trackers: list[str], domain: str, prefix: str, database: Path, *args: str
) -> subprocess.Popen[str]:
    """This module in a process of its own; read its report from ``stdout``."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.site_process", *args],
        env=environment(trackers, domain, prefix, database),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def environment(trackers: list[str], domain: str, prefix: str, database: Path) -> dict[str, str]:
    """The environment ``tests.site_settings`` reads."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.site_settings",
        "SITE_DB": str(database),
        "SITE_TRACKERS": ",".join(trackers),
        "SITE_DOMAIN": domain,
        "SITE_KEY_PREFIX": prefix,
    }


def rows(seconds: float, adoptable: list[str]) -> None:
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from storages_mogile.backends.mogile import MogileFSStorage
    from tests.testapp.models import Record

    overwriting = MogileFSStorage(file_overwrite=True, **default_storage._options)
    mine = Record.objects.create(public=ContentFile(b"v0", name="ref.txt")).public.name
    report(mine, b"v0")
    deadline = time.monotonic() + seconds
    turn = 0
    while time.monotonic() < deadline:
        content = b"process %d" % turn
        row = Record.objects.create(public=ContentFile(content, name="new.txt"))
        report(row.public.name, content)
        overwriting.save(mine, ContentFile(content))
        report(mine, content)
        if adoptable:
            adopt(Record, adoptable.pop())
        turn += 1


def adopt(model: type, name: str) -> None:
    """A row for an old orphan; dropped if the file was moved before the row was made."""
    from django.core.files.storage import default_storage

    adopted = model.objects.create(public=name)
    if default_storage.exists(name):
        report(name, b"orphan")
    else:  # no row referred to it when it moved
        model._base_manager.filter(pk=adopted.pk).delete()
        print(json.dumps({"too_late": name}), flush=True)


def uploads(names: list[str]) -> None:
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    print("ready", flush=True)
    for name in names:
        content = b"a user's upload of %s, from another process" % name.encode()
        report(default_storage.save(name, ContentFile(content)), content)


def report(name: str, content: bytes) -> None:
    print(json.dumps({"name": name, "content": content.decode()}), flush=True)


if __name__ == "__main__":
    django.setup()
    if sys.argv[1] == "rows":
        rows(float(sys.argv[2]), sys.argv[3:])
    else:
        uploads(sys.argv[2:])

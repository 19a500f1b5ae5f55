"""A site in a process of its own, saving while a test audits or imports.

``python -m tests.site_process SECONDS [ADOPT ...]`` (with ``tests.site_settings``):
for SECONDS it saves new files with their rows, saves new versions of the
files its first rows refer to, and makes rows for the names ADOPT (files
uploaded earlier, orphans until then). It prints, as JSON lines, the
content each name referred to by a row must hold at the end, and the names
it adopted too late (moved to the quarantine before their row was made).
"""

from __future__ import annotations

import json
import sys
import time

import django


def main(seconds: float, adoptable: list[str]) -> None:
    django.setup()
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from storages_mogile.backends.mogile import MogileFSStorage
    from tests.testapp.models import Record

    overwriting = MogileFSStorage(file_overwrite=True, **default_storage._options)
    mine = [Record.objects.create(public=ContentFile(b"v0", name="ref.txt")).public.name]
    report(mine[0], b"v0")
    deadline = time.monotonic() + seconds
    turn = 0
    while time.monotonic() < deadline:
        content = b"process %d" % turn
        row = Record.objects.create(public=ContentFile(content, name="new.txt"))
        report(row.public.name, content)
        overwriting.save(mine[0], ContentFile(content))
        report(mine[0], content)
        if adoptable:
            name = adoptable.pop()
            adopted = Record.objects.create(public=name)
            if default_storage.exists(name):
                report(name, b"orphan")
            else:  # moved before the row was made: no row referred to it then
                Record._base_manager.filter(pk=adopted.pk).delete()
                print(json.dumps({"too_late": name}), flush=True)
        turn += 1


def report(name: str, content: bytes) -> None:
    print(json.dumps({"name": name, "content": content.decode()}), flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]), sys.argv[2:])

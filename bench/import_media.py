"""mogilefs_import against a plain open()/save() loop, side by side.

Copies files from a FileSystemStorage into a MogileFSStorage on the dev
MogileFS (a subprocess, its files in /dev/shm) twice per data set: with
``manage.py mogilefs_import --path`` (``--jobs`` threads) and with the loop a
user would write by hand (``storage.save(name, source.open(name))`` per
file). It reports files per second, the speed ratio, and each run's peak RSS
growth of this process (sampled every 2 ms). The data sets: 1,000 small
files, and one large file (256 MiB by default), which must cost no more
memory than a small one.

    .venv/bin/python bench/import_media.py [--files 1000] [--file-kib 8] [--mib 256] [--jobs 4]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import django
from django.conf import settings
from harness import MIB, DevServer, PeakRSS  # puts the repo on sys.path


def fill(root: Path, files: int, size: int) -> None:
    block = os.urandom(min(size, MIB))
    for index in range(files):
        path = root / f"{index:05d}.bin"
        with path.open("wb") as out:
            for _ in range(0, size, len(block)):
                out.write(block)


def by_command(path: str, jobs: int) -> None:
    from django.core.management import call_command

    call_command(
        "mogilefs_import", "--path", path, "--source", "legacy", "--jobs", str(jobs),
        stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip


def by_loop(path: str) -> None:
    from django.core.files.storage import storages

    from storages_mogile.backends.mogile import MogileFSStorage

    source = storages["legacy"]
    target = MogileFSStorage(key_prefix="loop/", file_overwrite=True)
    for name in source.listdir(path)[1]:
        with source.open(f"{path}/{name}", "rb") as stream:
            target.save(f"{path}/{name}", stream)


def measure(operation) -> tuple[float, float]:
    began = time.perf_counter()
    with PeakRSS(os.getpid()) as probe:
        operation()
    return time.perf_counter() - began, probe.growth_mib


def main() -> None:
    parser = argparse.ArgumentParser(description="mogilefs_import benchmark")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--file-kib", type=int, default=8)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--jobs", type=int, default=4)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        media = Path(tmp) / "media"
        (media / "small").mkdir(parents=True)
        (media / "large").mkdir()
        fill(media / "small", options.files, options.file_kib * 1024)
        fill(media / "large", 1, options.mib * MIB)
        server = DevServer.start(Path(tmp) / "mogile", "bench", {"one": 1})
        try:
            settings.configure(
                INSTALLED_APPS=["storages_mogile"],
                USE_TZ=True,
                MOGILEFS_DOMAIN="bench",
                MOGILEFS_TRACKERS=[server.tracker],
                MOGILEFS_CLASS="one",
                STORAGES={
                    "default": {
                        "BACKEND": "storages_mogile.backends.mogile.MogileFSStorage",
                        "OPTIONS": {"key_prefix": "import/", "mogile_class": "one"},
                    },
                    "legacy": {
                        "BACKEND": "django.core.files.storage.FileSystemStorage",
                        "OPTIONS": {"location": str(media)},
                    },
                },
            )
            django.setup()
            rows = []
            for label, path, count in (
                (f"{options.files} x {options.file_kib} KiB", "small", options.files),
                (f"1 x {options.mib} MiB", "large", 1),
            ):
                loop = measure(lambda path=path: by_loop(path))
                command = measure(lambda path=path: by_command(path, options.jobs))
                rows.append((label, count, command, loop))
        finally:
            server.stop()
    print(f"mogilefs_import (--jobs {options.jobs}) vs an open()/save() loop, dev MogileFS")
    print(
        f"{'':16}{'import f/s':>12}{'loop f/s':>10}{'ratio':>7}{'import MiB':>12}{'loop MiB':>10}"
    )
    for label, count, (cmd_s, cmd_mib), (loop_s, loop_mib) in rows:
        print(
            f"{label:16}{count / cmd_s:>12.1f}{count / loop_s:>10.1f}{loop_s / cmd_s:>7.2f}"
            f"{cmd_mib:>12.1f}{loop_mib:>10.1f}"
        )


if __name__ == "__main__":
    main()

"""Peak memory of saving and reading a 256 MiB file through MogileFSStorage.

The dev MogileFS runs in a subprocess, with its files in /dev/shm to keep
the disk's noise out, so the numbers are this process's own: Django's
``Storage.save()`` and ``open().chunks()`` over the storage, side by side
with the baseline of a raw urllib3 streaming PUT and GET of the same file to
the same storage node. Peak RSS growth is sampled every 2 ms; the goal is
growth under 32 MiB. Each operation runs three times; the report gives the
median time and the largest growth.

    .venv/bin/python bench/storage_memory.py [--mib 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import django
import urllib3
from django.conf import settings
from harness import MIB, DevServer, PeakRSS  # puts the repo on sys.path

GOAL_MIB = 32


def measured(operation, result: dict[str, float], runs: int = 3) -> None:
    """Run ``operation`` ``runs`` times: its median seconds, its largest peak RSS growth."""
    seconds = []
    growth = []
    for _ in range(runs):
        began = time.perf_counter()
        with PeakRSS(os.getpid()) as probe:
            operation()
        seconds.append(time.perf_counter() - began)
        growth.append(probe.growth_mib)
    result["seconds"] = statistics.median(seconds)
    result["mib"] = max(growth)


def write_source(path: Path, size: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as out:
        for _ in range(size // MIB):
            out.write(block)


def baseline(path: Path, node: str, result_put: dict, result_get: dict) -> None:
    """Raw urllib3: a streaming PUT and a streaming GET of the same file."""
    http = urllib3.PoolManager()
    url = f"{node}/dev1/0/000/999/0000999999.fid"

    def put() -> None:
        with path.open("rb") as source:
            response = http.request(
                "PUT", url, body=source, preload_content=False,
                headers={"Content-Length": str(path.stat().st_size)},
            )  # fmt: skip
            response.drain_conn()
            assert response.status < 300, response.status

    def get() -> None:
        response = http.request("GET", url, preload_content=False)
        for _ in response.stream(MIB):
            pass
        response.release_conn()

    measured(put, result_put)
    measured(get, result_get)
    http.request("DELETE", url)


def through_storage(path: Path, result_save: dict, result_read: dict) -> None:
    from django.core.files import File

    from storages_mogile.backends.mogile import MogileFSStorage

    storage = MogileFSStorage(mogile_class="one", file_overwrite=True)
    name = "bench/big.bin"

    def save() -> None:
        with path.open("rb") as source:
            storage.save(name, File(source))

    def read() -> None:
        with storage.open(name) as handle:
            for _ in handle.chunks(MIB):
                pass

    measured(save, result_save)
    measured(read, result_read)
    storage.delete(name)


def main() -> None:
    parser = argparse.ArgumentParser(description="storage peak-memory benchmark")
    parser.add_argument("--mib", type=int, default=256)
    size = parser.parse_args().mib * MIB
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        server = DevServer.start(Path(tmp) / "mogile", "bench", {"one": 1})
        try:
            settings.configure(
                MOGILEFS_DOMAIN="bench", MOGILEFS_TRACKERS=[server.tracker], USE_TZ=True
            )
            django.setup()
            source = Path(tmp) / "source.bin"
            write_source(source, size)
            raw_put: dict = {}
            raw_get: dict = {}
            save: dict = {}
            read: dict = {}
            baseline(source, server.nodes[0], raw_put, raw_get)
            through_storage(source, save, read)
        finally:
            server.stop()
    mib = size / MIB
    print(f"{mib:.0f} MiB file; peak RSS growth (MiB) and throughput, storage vs raw urllib3")
    print(
        f"{'':8}{'storage':>10}{'raw':>8}{'storage MiB/s':>15}{'raw MiB/s':>11}{'speed ratio':>13}"
    )
    for label, ours, raw in (("save", save, raw_put), ("read", read, raw_get)):
        print(
            f"{label:8}{ours['mib']:>10.1f}{raw['mib']:>8.1f}{mib / ours['seconds']:>15.0f}"
            f"{mib / raw['seconds']:>11.0f}{raw['seconds'] / ours['seconds']:>13.2f}"
        )
    worst = max(save["mib"], read["mib"])
    verdict = "within" if worst < GOAL_MIB else "OVER"
    print(f"peak growth {worst:.1f} MiB: {verdict} the {GOAL_MIB} MiB goal")


if __name__ == "__main__":
    main()

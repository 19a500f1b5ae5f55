"""Peak memory of saving and reading a 256 MiB file through MogileFSStorage.

The dev MogileFS runs in a subprocess, so the numbers are this process's
own: Django's ``Storage.save()`` and ``open().chunks()`` over the storage,
side by side with the baseline of a raw urllib3 streaming PUT and GET of the
same file to the same storage node. Peak RSS growth is sampled from
/proc/self/statm every few milliseconds; the goal is growth under 32 MiB.

    .venv/bin/python bench/storage_memory.py [--mib 256]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import django
import urllib3
from django.conf import settings

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024
GOAL_MIB = 32


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


@contextmanager
def peak_growth(result: dict[str, float]):
    """Record in result['mib'] the peak RSS growth while the block runs."""
    start = rss()
    peak = start
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.002):
            peak = max(peak, rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.perf_counter()
    try:
        yield
    finally:
        done.set()
        sampler.join()
        result["seconds"] = time.perf_counter() - began
        result["mib"] = (max(peak, rss()) - start) / MIB


def start_devserver(data_dir: Path) -> tuple[subprocess.Popen[str], str, list[str]]:
    """The dev MogileFS CLI in a subprocess; returns it, its tracker and node URLs."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "storages_mogile.devserver",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(data_dir),
            "--nodes",
            "2",
            "--domain",
            "bench",
            "--class",
            "bench:one:1",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if "ready" in line.lower():
            break
    text = "".join(lines)
    tracker = re.search(r"tracker\D*?(\d+\.\d+\.\d+\.\d+:\d+)", text, re.IGNORECASE)
    nodes = re.findall(r"(http://\d+\.\d+\.\d+\.\d+:\d+)", text)
    if not tracker or not nodes:
        process.kill()
        raise SystemExit(f"could not read the devserver's addresses from:\n{text}")
    return process, tracker.group(1), nodes


def write_source(path: Path, size: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as out:
        for _ in range(size // MIB):
            out.write(block)


def baseline(path: Path, node: str, result_put: dict, result_get: dict) -> None:
    """Raw urllib3: a streaming PUT and a streaming GET of the same file."""
    http = urllib3.PoolManager()
    url = f"{node}/dev1/0/000/999/0000999999.fid"
    with path.open("rb") as source, peak_growth(result_put):
        response = http.request(
            "PUT",
            url,
            body=source,
            preload_content=False,
            headers={"Content-Length": str(path.stat().st_size)},
        )
        response.drain_conn()
        assert response.status < 300, response.status
    with peak_growth(result_get):
        response = http.request("GET", url, preload_content=False)
        for _ in response.stream(MIB):
            pass
        response.release_conn()
    http.request("DELETE", url)


def through_storage(path: Path, result_save: dict, result_read: dict) -> None:
    from django.core.files import File

    from storages_mogile.backends.mogile import MogileFSStorage

    storage = MogileFSStorage(mogile_class="one", file_overwrite=True)
    with path.open("rb") as source, peak_growth(result_save):
        name = storage.save("bench/big.bin", File(source))
    with peak_growth(result_read), storage.open(name) as handle:
        for _ in handle.chunks(MIB):
            pass
    storage.delete(name)


def main() -> None:
    parser = argparse.ArgumentParser(description="storage peak-memory benchmark")
    parser.add_argument("--mib", type=int, default=256)
    size = parser.parse_args().mib * MIB
    with tempfile.TemporaryDirectory() as tmp:
        process, tracker, nodes = start_devserver(Path(tmp) / "mogile")
        try:
            settings.configure(
                MOGILEFS_DOMAIN="bench",
                MOGILEFS_TRACKERS=[tracker],
                USE_TZ=True,
                INSTALLED_APPS=[],
                DATABASES={},
            )
            django.setup()
            source = Path(tmp) / "source.bin"
            write_source(source, size)
            raw_put: dict = {}
            raw_get: dict = {}
            save: dict = {}
            read: dict = {}
            baseline(source, nodes[0], raw_put, raw_get)
            through_storage(source, save, read)
        finally:
            process.terminate()
            process.wait(10)
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

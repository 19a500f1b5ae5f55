"""What min_copies costs: save latency with and without waiting for the copies.

Saves small files through MogileFSStorage into a class with two copies,
alternately with ``min_copies=None`` (acknowledged with one copy, replication
follows) and ``min_copies=2`` (save() returns once the tracker counts two),
and prints the median and 90th-percentile latency of each and their ratio.
Against the dev MogileFS (a subprocess, replication every 0.2 s) by default,
or a real one named by MOGILEFS_TEST_TRACKERS / MOGILEFS_TEST_DOMAIN (its
class ``avatar`` must keep two copies).

    .venv/bin/python bench/durable_save.py [--saves 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import django
from django.conf import settings
from harness import DevServer  # puts the repo on sys.path


def latencies(storage, saves: int) -> list[float]:  # type: ignore[no-untyped-def]
    from django.core.files.base import ContentFile

    seconds = []
    for index in range(saves):
        began = time.perf_counter()
        name = storage.save(f"durable-bench/{uuid.uuid4().hex}-{index}", ContentFile(b"x" * 4096))
        seconds.append(time.perf_counter() - began)
        storage.delete(name)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description="min_copies latency benchmark")
    parser.add_argument("--saves", type=int, default=40)
    saves = parser.parse_args().saves
    real = os.environ.get("MOGILEFS_TEST_TRACKERS")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        server = None
        if real:
            trackers, domain, where = real.split(","), os.environ["MOGILEFS_TEST_DOMAIN"], "real"
        else:
            server = DevServer.start(Path(tmp) / "mogile", "bench", {"avatar": 2})
            trackers, domain, where = [server.tracker], "bench", "dev"
        try:
            settings.configure(USE_TZ=True, MOGILEFS_DOMAIN=domain, MOGILEFS_TRACKERS=trackers)
            django.setup()
            from storages_mogile.backends.mogile import MogileFSStorage

            plain = MogileFSStorage(mogile_class="avatar")
            durable = MogileFSStorage(mogile_class="avatar", min_copies=2, min_copies_timeout=60)
            results = {
                "one copy": latencies(plain, saves),
                "min_copies=2": latencies(durable, saves),
            }
        finally:
            if server is not None:
                server.stop()
    print(f"{saves} saves of 4 KiB into a 2-copy class, {where} MogileFS")
    for label, seconds in results.items():
        p90 = statistics.quantiles(seconds, n=10)[-1]
        print(
            f"{label:14} median {statistics.median(seconds) * 1000:8.1f} ms   p90 {p90 * 1000:8.1f} ms"
        )
    ratio = statistics.median(results["min_copies=2"]) / statistics.median(results["one copy"])
    print(f"ratio of medians: {ratio:.1f}")


if __name__ == "__main__":
    main()

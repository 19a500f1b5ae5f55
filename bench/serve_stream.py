"""Stream mode against the storage node directly: speed, and the server's memory.

Django runs the e2e site under uvicorn (ASGI) and under wsgiref (WSGI),
each in its own process. Speed: ``curl -o /dev/null`` downloads one file
(256 MiB by default) from ``/stream/<key>`` of each server and, as the
baseline, straight from the storage node, in alternating rounds; the
median of each is reported with its ratio to the node (goal under uvicorn:
at least 0.9x). Memory: in a separate download per server (sampling costs
CPU), the server's RSS is sampled every 2 ms (goal: growth under 32 MiB).
The bytes served are checked once per server.

Against the real MogileFS named by MOGILEFS_TEST_TRACKERS /
MOGILEFS_TEST_DOMAIN (class ``thumb``: one copy), else a dev MogileFS
subprocess.

    .venv/bin/python bench/serve_stream.py [--mib 256] [--rounds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import urllib3
from harness import MIB, DevServer, PeakRSS  # puts the repo on sys.path

from storages_mogile.client import Client
from tests.e2e.servers import django_server, wsgiref_server

KEY = f"bench/stream-{os.getpid()}.bin"
WARM_KEY = f"bench/warm-{os.getpid()}.bin"
GOAL_MIB = 32
GOAL_RATIO = 0.9


def sha256_of(url: str) -> tuple[int, str]:
    """Size and SHA-256 of what ``url`` serves (untimed)."""
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=60))
    digest, size = hashlib.sha256(), 0
    response = http.request("GET", url, preload_content=False)
    assert response.status == 200, response.status
    for chunk in response.stream(MIB):
        digest.update(chunk)
        size += len(chunk)
    response.release_conn()
    return size, digest.hexdigest()


def curl_seconds(curl: str, url: str, size: int) -> float:
    """Wall time of one ``curl -o /dev/null`` download of ``url``."""
    began = time.perf_counter()
    done = subprocess.run(
        [curl, "-sf", "-o", "/dev/null", "-w", "%{size_download}", url],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - began
    assert int(done.stdout) == size, f"{url}: {done.stdout} bytes, not {size}"
    return seconds


def store(client: Client, path: Path, size: int, cls: str) -> str:
    """Write ``size`` random bytes to ``path``, store them as KEY; their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(size // MIB):
            block = os.urandom(MIB)
            out.write(block)
            digest.update(block)
    with path.open("rb") as source:
        client.store_file(KEY, source, cls=cls)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="size of the file in MiB")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    size = args.mib * MIB
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("curl is not installed (apt-get install curl)")
    real = os.environ.get("MOGILEFS_TEST_TRACKERS")
    times: dict[str, list[float]] = {}
    growth: dict[str, PeakRSS] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mogile = None
        if real:
            trackers, domain, cls = real.split(","), os.environ["MOGILEFS_TEST_DOMAIN"], "thumb"
        else:
            mogile = DevServer.start(work / "mogile", "bench", {"one": 1})
            trackers, domain, cls = [mogile.tracker], "bench", "one"
        client = Client(domain, trackers)
        try:
            expected = store(client, work / "source.bin", size, cls)
            client.store_content(WARM_KEY, os.urandom(MIB), cls=cls)
            urls = {"storage node directly": client.get_paths(KEY)[0]}
            with (
                django_server(work, trackers, domain) as asgi,
                wsgiref_server(work, trackers, domain) as wsgi,
            ):
                for label, server in (("uvicorn (ASGI)", asgi), ("wsgiref (WSGI)", wsgi)):
                    sha256_of(f"{server.url}/stream/{WARM_KEY}")  # imports, pools, caches
                    urls[label] = f"{server.url}/stream/{KEY}"
                    assert sha256_of(urls[label]) == (size, expected), "served bytes differ"
                    assert server.process is not None
                    with PeakRSS(server.process.pid) as peak:
                        curl_seconds(curl, urls[label], size)
                    growth[label] = peak
                for _ in range(args.rounds):
                    for label, url in urls.items():
                        times.setdefault(label, []).append(curl_seconds(curl, url, size))
        finally:
            for key in (KEY, WARM_KEY):
                client.delete(key)
            client.close()
            if mogile is not None:
                mogile.stop()
    report(times, growth, args.mib, real)


def report(
    times: dict[str, list[float]], growth: dict[str, PeakRSS], mib: int, real: str | None
) -> None:
    direct = statistics.median(times["storage node directly"])
    print(f"MogileFS: {'real, ' + real if real else 'dev (subprocess)'}")
    rounds = len(times["storage node directly"])
    print(f"stream mode, {mib} MiB downloaded with curl, medians of {rounds} rounds")
    print(f"{'':24}{'MiB/s':>8}{'vs node':>9}{'RSS before':>12}{'peak growth':>13}")
    for label, seconds in times.items():
        median = statistics.median(seconds)
        peak = growth.get(label)
        before = f"{peak.start / MIB:.1f}" if peak else "-"
        grown = f"{peak.growth_mib:.1f}" if peak else "-"
        print(f"{label:24}{mib / median:>8.0f}{direct / median:>9.2f}{before:>12}{grown:>13}")
    asgi = direct / statistics.median(times["uvicorn (ASGI)"])
    verdict = "meets" if asgi >= GOAL_RATIO else "misses"
    print(f"uvicorn at {asgi:.2f}x the node: {verdict} the {GOAL_RATIO}x goal")
    worst = max(peak.growth_mib for peak in growth.values())
    verdict = "within" if worst < GOAL_MIB else "OVER"
    print(f"worst peak growth {worst:.1f} MiB: {verdict} the {GOAL_MIB} MiB goal")


if __name__ == "__main__":
    main()

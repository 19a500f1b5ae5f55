"""Stream mode against the storage node directly: speed, CPU, and the server's memory.

Django runs the e2e site under uvicorn (ASGI) and under wsgiref (WSGI),
each in its own process. Speed: ``curl -o /dev/null`` downloads one file
(256 MiB by default) from each of: uvicorn's ``/stream/<key>`` (the async
view), uvicorn's ``/stream-sync/<key>`` (the sync view, a thread hop per
chunk), the async view under uvicorn with httptools and uvloop (as
``uvicorn[standard]`` runs; pip install 'uvicorn[standard]'), wsgiref's ``/stream/<key>`` (the sync view), nginx ``proxy_pass``
relaying the storage node's URL, and, as the baseline, the storage node
itself, in alternating rounds; the median of each is reported with its
ratio to the node (goal under uvicorn: at least 0.9x). CPU: the server
process's CPU time over all timed downloads, per GiB sent (goal: uvicorn's
async view within 1.5x of nginx relaying the same file). Memory: in a
separate download per server (sampling costs CPU), the server's RSS is
sampled every 2 ms (goal: growth under 32 MiB). The bytes served are
checked once per server.

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
from urllib.parse import urlsplit

import urllib3
from harness import MIB, BenchMogileFS, PeakRSS, cpu_seconds  # puts the repo on sys.path

from storages_mogile.client import Client
from tests.e2e.servers import Server, django_server, find_binary, nginx_relay, wsgiref_server

KEY = f"bench/stream-{os.getpid()}.bin"
WARM_KEY = f"bench/warm-{os.getpid()}.bin"
GOAL_MIB = 32
GOAL_RATIO = 0.9
GOAL_CPU_RATIO = 1.5
NODE = "storage node directly"
ASYNC = "uvicorn, async view"
STANDARD = "uvicorn[standard], async"
NGINX = "nginx relaying the node"


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
    times: dict[str, list[float]] = {}
    cpu: dict[str, float] = {}
    growth: dict[str, PeakRSS] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mogile = BenchMogileFS.start(work)
        trackers, domain, cls = mogile.trackers, mogile.domain, mogile.cls
        client = Client(domain, trackers)
        try:
            expected = store(client, work / "source.bin", size, cls)
            client.store_content(WARM_KEY, os.urandom(MIB), cls=cls)
            node_url = client.get_paths(KEY)[0]
            node = urlsplit(node_url)
            with (
                django_server(work, trackers, domain) as asgi,
                django_server(work, trackers, domain, name="std", standard=True) as standard,
                wsgiref_server(work, trackers, domain) as wsgi,
                nginx_relay(nginx_binary(), work, f"http://{node.netloc}") as relay,
            ):
                targets: dict[str, tuple[str, Server | None]] = {
                    NODE: (node_url, None),
                    ASYNC: (f"{asgi.url}/stream/{KEY}", asgi),
                    "uvicorn, sync view": (f"{asgi.url}/stream-sync/{KEY}", asgi),
                    STANDARD: (f"{standard.url}/stream/{KEY}", standard),
                    "wsgiref (WSGI)": (f"{wsgi.url}/stream/{KEY}", wsgi),
                    NGINX: (f"{relay.url}{node.path}", relay),
                }
                for label, (url, server) in targets.items():
                    if server is None:
                        continue
                    if server is not relay:
                        sha256_of(url.replace(KEY, WARM_KEY))  # imports, pools, caches
                    assert sha256_of(url) == (size, expected), f"{label}: served bytes differ"
                    with PeakRSS(pid_of(server)) as peak:
                        curl_seconds(curl, url, size)
                    growth[label] = peak
                for _ in range(args.rounds):
                    for label, (url, server) in targets.items():
                        before = cpu_seconds(pid_of(server)) if server else 0.0
                        times.setdefault(label, []).append(curl_seconds(curl, url, size))
                        if server is not None:
                            used = cpu_seconds(pid_of(server)) - before
                            cpu[label] = cpu.get(label, 0.0) + used
        finally:
            for key in (KEY, WARM_KEY):
                client.delete(key)
            client.close()
            mogile.stop()
    gib = args.mib * args.rounds / 1024
    per_gib = {label: used / gib for label, used in cpu.items()}
    report(times, per_gib, growth, args.mib, mogile.label)


def nginx_binary() -> str:
    binary = find_binary("nginx")
    if binary is None:
        raise SystemExit("nginx is not installed (scripts/install-proxies)")
    return binary


def pid_of(server: Server) -> int:
    assert server.process is not None
    return server.process.pid


def report(
    times: dict[str, list[float]],
    cpu_per_gib: dict[str, float],
    growth: dict[str, PeakRSS],
    mib: int,
    mogilefs: str,
) -> None:
    direct = statistics.median(times[NODE])
    print(f"MogileFS: {mogilefs}")
    rounds = len(times[NODE])
    print(f"stream mode, {mib} MiB downloaded with curl, medians of {rounds} rounds")
    print(
        f"{'':26}{'MiB/s':>8}{'vs node':>9}{'CPU s/GiB':>11}{'vs nginx':>10}"
        f"{'RSS before':>12}{'peak growth':>13}"
    )
    for label, seconds in times.items():
        median = statistics.median(seconds)
        peak = growth.get(label)
        before = f"{peak.start / MIB:.1f}" if peak else "-"
        grown = f"{peak.growth_mib:.1f}" if peak else "-"
        used = f"{cpu_per_gib[label]:.2f}" if label in cpu_per_gib else "-"
        versus = f"{cpu_per_gib[label] / cpu_per_gib[NGINX]:.2f}" if label in cpu_per_gib else "-"
        print(
            f"{label:26}{mib / median:>8.0f}{direct / median:>9.2f}{used:>11}{versus:>10}"
            f"{before:>12}{grown:>13}"
        )
    asgi = direct / statistics.median(times[ASYNC])
    verdict = "meets" if asgi >= GOAL_RATIO else "misses"
    print(f"uvicorn's async view at {asgi:.2f}x the node: {verdict} the {GOAL_RATIO}x goal")
    ratio = cpu_per_gib[ASYNC] / cpu_per_gib[NGINX]
    verdict = "meets" if ratio <= GOAL_CPU_RATIO else "misses"
    print(f"its CPU per GiB at {ratio:.2f}x nginx's: {verdict} the {GOAL_CPU_RATIO}x goal")
    worst = max(peak.growth_mib for peak in growth.values())
    verdict = "within" if worst < GOAL_MIB else "OVER"
    print(f"worst peak growth {worst:.1f} MiB: {verdict} the {GOAL_MIB} MiB goal")


if __name__ == "__main__":
    main()

"""Memory of the server process while stream mode sends a 256 MiB file.

Django runs under uvicorn (ASGI) and under wsgiref (WSGI), each in its own
process whose RSS is sampled every 2 ms while one client downloads the file
from ``/stream/<key>``. Side by side, as the baseline, the same client
downloads the same file straight from the storage node (no Django). The goal
is a peak RSS growth of the server under 32 MiB.

    .venv/bin/python bench/serve_stream.py [--mib 256]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import urllib3
from harness import MIB, DevServer, PeakRSS  # puts the repo on sys.path

from storages_mogile.client import Client
from tests.e2e.servers import Server, django_server, free_port

DOMAIN = "bench"
KEY = "bench/stream.bin"
WARM_KEY = "bench/warm.bin"
GOAL_MIB = 32


def wsgi_server(workdir: Path, tracker: str) -> Server:
    """The e2e site under wsgiref's single-threaded WSGI server; not started."""
    port = free_port()
    code = (
        "from wsgiref.simple_server import make_server, WSGIRequestHandler\n"
        "from django.core.wsgi import get_wsgi_application\n"
        "class Quiet(WSGIRequestHandler):\n"
        "    def log_message(self, *args): pass\n"
        f"make_server('127.0.0.1', {port}, get_wsgi_application(), handler_class=Quiet)"
        ".serve_forever()\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.e2e.site.settings",
        "MOGILEFS_E2E_TRACKERS": tracker,
        "MOGILEFS_E2E_DOMAIN": DOMAIN,
    }
    return Server("wsgiref", [sys.executable, "-c", code], port, workdir / "wsgiref.log", env)


def download(url: str) -> tuple[int, str, float]:
    """Stream ``url`` to nowhere; (bytes, sha256, seconds)."""
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=60))
    digest = hashlib.sha256()
    began = time.perf_counter()
    response = http.request("GET", url, preload_content=False)
    assert response.status == 200, response.status
    size = 0
    for chunk in response.stream(MIB):
        digest.update(chunk)
        size += len(chunk)
    response.release_conn()
    return size, digest.hexdigest(), time.perf_counter() - began


def store(client: Client, path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``, store them as KEY; their sha256."""
    digest = hashlib.sha256()
    block = os.urandom(MIB)
    with path.open("wb") as out:
        for _ in range(size // MIB):
            out.write(block)
            digest.update(block)
    with path.open("rb") as source:
        client.store_file(KEY, source, cls="one")
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="size of the file in MiB")
    size = parser.parse_args().mib * MIB
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mogile = DevServer.start(work / "mogile", DOMAIN, {"one": 1})
        try:
            client = Client(DOMAIN, [mogile.tracker])
            expected = store(client, work / "source.bin", size)
            client.store_content(WARM_KEY, os.urandom(MIB), cls="one")
            node_url = client.get_paths(KEY)[0]
            got, digest, seconds = download(node_url)
            assert (got, digest) == (size, expected)
            rows.append(("storage node directly", None, seconds))
            for label, make in (
                ("uvicorn (ASGI)", lambda: django_server(work, [mogile.tracker], DOMAIN)),
                ("wsgiref (WSGI)", lambda: wsgi_server(work, mogile.tracker)),
            ):
                with make() as server:
                    assert server.process is not None
                    download(f"{server.url}/stream/{WARM_KEY}")  # imports, pools, caches
                    with PeakRSS(server.process.pid) as peak:
                        got, digest, seconds = download(f"{server.url}/stream/{KEY}")
                    assert (got, digest) == (size, expected), "served bytes differ"
                    rows.append((label, peak, seconds))
        finally:
            mogile.stop()

    mib = size / MIB
    direct = rows[0][2]
    print(f"stream mode, one {mib:.0f} MiB download; server RSS sampled every 2 ms")
    print(f"{'':24}{'RSS before':>11}{'peak growth':>13}{'MiB/s':>8}{'speed vs node':>15}")
    for label, peak, seconds in rows:
        before = f"{peak.start / MIB:.1f}" if peak else "-"
        growth = f"{peak.growth_mib:.1f}" if peak else "-"
        print(f"{label:24}{before:>11}{growth:>13}{mib / seconds:>8.0f}{direct / seconds:>15.2f}")
    worst = max(peak.growth_mib for _, peak, _ in rows if peak)
    verdict = "within" if worst < GOAL_MIB else "OVER"
    print(f"worst peak growth {worst:.1f} MiB: {verdict} the {GOAL_MIB} MiB goal")


if __name__ == "__main__":
    main()

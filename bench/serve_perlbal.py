"""Requests per second of the Perlbal mode against a bare Django view, and tracker round trips.

Both go through the same harness: the real Perlbal (docs/serving.md's
configuration) in front of Django under uvicorn, loaded by the same keep-alive
clients, in alternating rounds. ``/bare/`` is a view returning an empty
HttpResponse; ``/media/<key>`` is the serve view in Perlbal mode with a warm
path cache, after which Perlbal fetches the file from a storage node. The
same pair is also timed in-process through Django's test client (no proxy,
no network), which isolates the view's own cost.

Tracker round trips are counted at a relay between Django and the dev
tracker (every tracker request is one line through it), for the first
request (cold path cache) and for all the timed ones (warm).

    .venv/bin/python bench/serve_perlbal.py [--seconds 3] [--rounds 3] [--threads 4] [--size 4096]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import urllib3
from harness import DevServer, requests_per_second  # puts the repo on sys.path

from storages_mogile.client import Client
from tests.e2e.servers import django_server, find_binary, perlbal_server
from tests.serving.relay import CountingRelay

DOMAIN = "bench"
KEY = "bench/perlbal.bin"


def checker(expected: bytes):
    def check(response: urllib3.BaseHTTPResponse) -> None:
        if response.status != 200 or response.data != expected:
            raise AssertionError(f"unexpected answer {response.status}, {len(response.data)} bytes")

    return check


def through_perlbal(
    perlbal_url: str, relay: CountingRelay, data: bytes, seconds: float, rounds: int, threads: int
) -> dict[str, list[float] | int]:
    """Alternating rounds of the bare view and the serve view, behind Perlbal."""
    results: dict[str, list[float] | int] = {"bare": [], "serve": [], "serve_requests": 0}
    relay_before = relay.requests
    for _ in range(rounds):
        for kind, path, expected in (("bare", "/bare/", b""), ("serve", f"/media/{KEY}", data)):
            rate, count = requests_per_second(
                perlbal_url, path, checker(expected), seconds, threads
            )
            results[kind].append(rate)  # type: ignore[union-attr]
            if kind == "serve":
                results["serve_requests"] += count  # type: ignore[operator]
    results["tracker_requests"] = relay.requests - relay_before
    return results


def in_process(tracker: str, calls: int) -> dict[str, float]:
    """Calls per second of both views through Django's test client, in this process."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="tests.e2e.site.settings",
        MOGILEFS_E2E_TRACKERS=tracker,
        MOGILEFS_E2E_DOMAIN=DOMAIN,
    )
    import django
    from django.test import Client as TestClient

    django.setup()
    client = TestClient()
    assert client.get(f"/media/{KEY}").status_code == 200  # warm the path cache
    rates: dict[str, float] = {}
    for kind, path in (("bare", "/bare/"), ("serve", f"/media/{KEY}")):
        began = time.perf_counter()
        for _ in range(calls):
            client.get(path)
        rates[kind] = calls / (time.perf_counter() - began)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one timed run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each view, alternating")
    parser.add_argument("--threads", type=int, default=4, help="concurrent keep-alive clients")
    parser.add_argument("--size", type=int, default=4096, help="bytes of the served file")
    options = parser.parse_args()
    perlbal_binary = find_binary("perlbal")
    if perlbal_binary is None:
        raise SystemExit("perlbal is not installed: run scripts/install-proxies")
    data = os.urandom(options.size)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mogile = DevServer.start(work / "mogile", DOMAIN, {"two": 2})
        try:
            client = Client(DOMAIN, [mogile.tracker])
            client.store_content(KEY, data, cls="two")
            while len(client.get_paths(KEY)) < 2:
                time.sleep(0.05)
            with (
                CountingRelay(mogile.tracker) as relay,
                django_server(work, [relay.address], DOMAIN) as django_site,
                perlbal_server(perlbal_binary, work, django_site) as perlbal,
            ):
                http = urllib3.PoolManager(retries=False)
                before = relay.requests
                first = http.request("GET", f"{perlbal.url}/media/{KEY}")
                assert first.status == 200 and first.data == data, first.status
                cold = relay.requests - before
                proxied = through_perlbal(
                    perlbal.url, relay, data, options.seconds, options.rounds, options.threads
                )
                local = in_process(relay.address, calls=2000)
        finally:
            mogile.stop()

    bare = statistics.median(proxied["bare"])  # type: ignore[arg-type]
    serve = statistics.median(proxied["serve"])  # type: ignore[arg-type]
    warm = proxied["tracker_requests"] / proxied["serve_requests"]  # type: ignore[operator]
    print(f"Perlbal mode vs bare view; {options.size}-byte file, {options.threads} clients, "
          f"{options.rounds} x {options.seconds:g} s each, alternating")  # fmt: skip
    print(f"  behind Perlbal + uvicorn: bare {bare:8.0f} req/s, serve {serve:8.0f} req/s, "
          f"ratio serve/bare {serve / bare:.2f}")  # fmt: skip
    print(f"    rounds bare : {', '.join(f'{r:.0f}' for r in proxied['bare'])}")  # type: ignore[union-attr]
    print(f"    rounds serve: {', '.join(f'{r:.0f}' for r in proxied['serve'])}")  # type: ignore[union-attr]
    print(f"  in-process (test client): bare {local['bare']:8.0f} calls/s, "
          f"serve {local['serve']:8.0f} calls/s, ratio {local['serve'] / local['bare']:.2f}")  # fmt: skip
    print(f"  tracker round trips: {cold} on the first request (cold path cache); "
          f"{proxied['tracker_requests']} over {proxied['serve_requests']} warm requests "
          f"= {warm:.4f} per request")  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()

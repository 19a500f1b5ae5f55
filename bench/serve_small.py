"""Small files from the serving view: uvicorn against gunicorn, and many slow downloads.

Rate: 4 KiB files (``--files`` of them, path cache warm) in stream mode,
fetched by 16 concurrent keep-alive clients for ``--seconds`` per round, in
alternating rounds, from the e2e site under:

- uvicorn at ``/stream/``: ``serve_patterns()``, so the async view (ASGI);
- uvicorn at ``/stream-sync/``: the synchronous view in Django's thread per request;
- uvicorn with the site wrapped in ``SharedThreads`` (4 threads), the async view;
- the two async-view uvicorn rows again with httptools and uvloop, as
  ``uvicorn[standard]`` runs (when both are installed);
- gunicorn, one worker of 16 threads (WSGI): the synchronous view.

The median requests per second of each are reported with their ratio to
gunicorn (goal: uvicorn's async view at least as fast), and the server
process's CPU time per request. The clients are asyncio connections in this
process, the same for every server.

Slow downloads: ``--slow`` clients at once each download a 1 MiB file
under uvicorn, reading 16 KiB every 50 ms through a small receive buffer,
from the async view and then from the synchronous one, under Django's ASGI
handler as it is and wrapped in ``SharedThreads``; the server's thread
count and RSS are sampled every 20 ms and their peaks reported. Every body
is checked.

Against the real MogileFS named by MOGILEFS_TEST_TRACKERS / MOGILEFS_TEST_DOMAIN
(class ``thumb``), else a dev MogileFS subprocess. Needs gunicorn (pip install gunicorn
'uvicorn[standard]').

    .venv/bin/python bench/serve_small.py [--seconds 5] [--rounds 3] [--files 100] [--slow 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import socket
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from harness import MIB, BenchMogileFS, cpu_seconds, rss  # puts the repo on sys.path

from storages_mogile.client import Client
from tests.e2e.servers import Server, django_server, gunicorn_server

if TYPE_CHECKING:
    from typing_extensions import Self

CLIENTS = 16
SMALL = 4096
SLOW_SIZE = MIB
SLOW_READ = 16 * 1024
SLOW_PAUSE = 0.05


class Connection:
    """One keep-alive HTTP/1.1 connection sending GETs one after another."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, address: tuple[str, int], receive_buffer: int | None = None) -> Connection:
        sock = socket.socket()
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, address)
        limit = receive_buffer or 2**16
        reader, writer = await asyncio.open_connection(sock=sock, limit=limit)
        return cls(reader, writer)

    async def head(self, path: str) -> int:
        """Send a GET of ``path``; the answer's Content-Length once its head is read."""
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status = head.split(" ", 2)[1]
        if status != "200":
            raise AssertionError(f"{path}: status {status}")
        for line in head.split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                return int(value)
        raise AssertionError(f"{path}: no Content-Length")

    async def get(self, path: str) -> bytes:
        return await self.reader.readexactly(await self.head(path))

    def close(self) -> None:
        self.writer.close()


def threads_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError(f"no thread count for {pid}")


async def rate(address: tuple[str, int], paths: dict[str, bytes], seconds: float) -> int:
    """GETs answered by CLIENTS keep-alive connections within ``seconds``; every body checked."""
    deadline = time.perf_counter() + seconds
    names = list(paths)

    async def client(index: int) -> int:
        connection = await Connection.open(address)
        count = 0
        try:
            while time.perf_counter() < deadline:
                path = names[(index + count * CLIENTS) % len(names)]
                if await connection.get(path) != paths[path]:
                    raise AssertionError(f"{path}: other bytes served")
                count += 1
        finally:
            connection.close()
        return count

    return sum(await asyncio.gather(*(client(index) for index in range(CLIENTS))))


async def slow_downloads(address: tuple[str, int], path: str, data: bytes, count: int) -> None:
    """``count`` clients download ``path`` at once, each reading slowly; bodies checked."""

    async def client() -> None:
        connection = await Connection.open(address, receive_buffer=SLOW_READ)
        try:
            length, received = await connection.head(path), bytearray()
            while len(received) < length:
                received += await connection.reader.read(SLOW_READ)
                await asyncio.sleep(SLOW_PAUSE)
            if received != data:
                raise AssertionError(f"{path}: other bytes served")
        finally:
            connection.close()

    await asyncio.gather(*(client() for _ in range(count)))


class Peaks:
    """A process's peak thread count and RSS, sampled every 20 ms while used as a context."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.threads = self.rss = self.start_rss = 0
        self.seconds = 0.0  # how long the downloads took
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> Self:
        self.start_rss = rss(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self.threads = max(self.threads, threads_of(self.pid))
            self.rss = max(self.rss, rss(self.pid))


def pid_of(server: Server) -> int:
    assert server.process is not None
    return server.process.pid


def store_files(client: Client, cls: str, count: int) -> tuple[dict[str, bytes], str, bytes]:
    """``count`` 4 KiB files and one 1 MiB file: {key: bytes}, the large key and bytes."""
    run = uuid.uuid4().hex[:8]
    small = {f"bench/small-{run}-{index}.bin": os.urandom(SMALL) for index in range(count)}
    for key, data in small.items():
        client.store_content(key, data, cls=cls)
    large_key, large = f"bench/slow-{run}.bin", os.urandom(SLOW_SIZE)
    client.store_content(large_key, large, cls=cls)
    return small, large_key, large


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--slow", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mogile = BenchMogileFS.start(work)
        trackers, domain = mogile.trackers, mogile.domain
        client = Client(domain, trackers)
        small, large_key, large = store_files(client, mogile.cls, args.files)
        try:
            with (
                django_server(work, trackers, domain) as uvicorn,
                django_server(work, trackers, domain, "asgi_shared", "shared") as shared,
                gunicorn_server(work, trackers, domain, threads=CLIENTS) as gunicorn,
                contextlib.ExitStack() as standard,
            ):
                targets = {
                    "uvicorn, async view": (uvicorn, "/stream/"),
                    "uvicorn, sync view": (uvicorn, "/stream-sync/"),
                    "uvicorn+Shared, async": (shared, "/stream/"),
                    **standard_targets(standard, work, trackers, domain),
                    "gunicorn 1x16 threads": (gunicorn, "/stream/"),
                }
                rates, cpu = measure_rates(targets, small, args.seconds, args.rounds)
                slow = {
                    **measure_slow(uvicorn, "", large_key, large, args.slow),
                    **measure_slow(shared, "SharedThreads, ", large_key, large, args.slow),
                }
        finally:
            for key in [*small, large_key]:
                client.delete(key)
            client.close()
            mogile.stop()
    report(rates, cpu, slow, args, mogile.label)


def standard_targets(
    stack: contextlib.ExitStack, work: Path, trackers: list[str], domain: str
) -> dict[str, tuple[Server, str]]:
    """The async view under uvicorn with httptools and uvloop, as it is and
    in SharedThreads, started on ``stack``; none when they are not installed."""
    if not all(importlib.util.find_spec(name) for name in ("httptools", "uvloop")):
        print("httptools or uvloop not installed: no uvicorn[standard] rows")
        return {}
    plain = stack.enter_context(django_server(work, trackers, domain, "asgi", "std", standard=True))
    shared = stack.enter_context(
        django_server(work, trackers, domain, "asgi_shared", "std-shared", standard=True)
    )
    return {"uvicorn[std], async": (plain, "/stream/"), "uvicorn[std]+Shared": (shared, "/stream/")}


def measure_rates(
    targets: dict[str, tuple[Server, str]], small: dict[str, bytes], seconds: float, rounds: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Requests per second of each target per round, and server CPU µs per request."""
    rates: dict[str, list[float]] = {label: [] for label in targets}
    used: dict[str, list[float]] = {label: [0.0, 0.0] for label in targets}  # cpu s, requests
    for label, (server, prefix) in targets.items():  # warm: imports, connections, path cache
        address = ("127.0.0.1", server.port)
        asyncio.run(rate(address, {f"{prefix}{key}": data for key, data in small.items()}, 1.0))
    for _ in range(rounds):
        for label, (server, prefix) in targets.items():
            paths = {f"{prefix}{key}": data for key, data in small.items()}
            before = cpu_seconds(pid_of(server))
            began = time.perf_counter()
            count = asyncio.run(rate(("127.0.0.1", server.port), paths, seconds))
            rates[label].append(count / (time.perf_counter() - began))
            used[label][0] += cpu_seconds(pid_of(server)) - before
            used[label][1] += count
    cpu = {label: seconds * 1e6 / count for label, (seconds, count) in used.items()}
    return rates, cpu


def measure_slow(
    uvicorn: Server, label_prefix: str, key: str, data: bytes, count: int
) -> dict[str, Peaks]:
    """Peaks of uvicorn while ``count`` slow clients download from each view."""
    found = {}
    for view, prefix in (("async view", "/stream/"), ("sync view", "/stream-sync/")):
        label = f"{label_prefix}{view}"
        address = ("127.0.0.1", uvicorn.port)
        with Peaks(pid_of(uvicorn)) as peaks:
            began = time.perf_counter()
            asyncio.run(slow_downloads(address, f"{prefix}{key}", data, count))
            peaks.seconds = time.perf_counter() - began
        found[label] = peaks
    return found


def report(
    rates: dict[str, list[float]],
    cpu: dict[str, float],
    slow: dict[str, Peaks],
    args: argparse.Namespace,
    mogilefs: str,
) -> None:
    print(f"MogileFS: {mogilefs}")
    print(
        f"{SMALL}-byte files ({args.files}), {CLIENTS} keep-alive clients, path cache warm, "
        f"medians of {args.rounds} rounds of {args.seconds:g} s"
    )
    baseline = statistics.median(rates["gunicorn 1x16 threads"])
    print(f"{'':24}{'req/s':>8}{'vs gunicorn':>13}{'server CPU µs/req':>19}")
    for label, values in rates.items():
        median = statistics.median(values)
        print(f"{label:24}{median:>8.0f}{median / baseline:>13.2f}{cpu[label]:>19.0f}")
    ratio = statistics.median(rates["uvicorn, async view"]) / baseline
    verdict = "meets" if ratio >= 1 else "misses"
    print(f"uvicorn's async view at {ratio:.2f}x gunicorn: {verdict} the 'at least as fast' goal")
    print(
        f"{args.slow} concurrent slow downloads of 1 MiB under uvicorn "
        f"({SLOW_READ // 1024} KiB per {SLOW_PAUSE * 1000:.0f} ms each)"
    )
    print(f"{'':28}{'seconds':>8}{'peak threads':>14}{'RSS before':>12}{'peak RSS':>10}")
    for label, peaks in slow.items():
        print(
            f"{label:28}{peaks.seconds:>8.1f}{peaks.threads:>14}"
            f"{peaks.start_rss / MIB:>11.1f}M{peaks.rss / MIB:>9.1f}M"
        )


if __name__ == "__main__":
    main()

"""Which HTTP library should the asyncio client read storage nodes with?

Reads one stored file from its storage node with each candidate, side by side
in one process, alternating rounds, and reports wall time and this process's
CPU time per GiB as ratios to the blocking urllib3 read the client does today:

* ``urllib3``: the baseline, a PoolManager GET read in 1 MiB chunks (blocking);
* ``aiohttp``: ``ClientSession(read_bufsize=1 MiB)``, ``content.iter_chunked(1 MiB)``;
* ``AsyncNodeReader``: the client's async reader over aiohttp (``async for`` in
  1 MiB chunks), what its reading rules cost on top of aiohttp;
* ``httpx``: ``AsyncClient.stream``, ``aiter_raw()``;
* ``h11``: h11 over asyncio streams (``asyncio.open_connection(limit=1 MiB)``),
  reads of 1 MiB; a new connection per request (h11 keeps no HTTP/1.0
  connection alive, and storage nodes answer HTTP/1.0).

Then 4 KiB files: 16 concurrent tasks in one event loop, each reading on
kept-alive connections, requests per second and CPU per request.

The storage node is the dev MogileFS's, in a subprocess (bench/harness.py),
or with ``--lab DIR`` the real MogileFS lab's mogstored.

    .venv/bin/python bench/async_node_read.py [--size-mib 256] [--rounds 5] [--lab DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import h11
import httpx
import urllib3
from harness import MIB, DevServer  # puts the repo on sys.path

from storages_mogile.client import Client
from storages_mogile.client.aionodes import AsyncNodeReader, AsyncStorageNodes

CHUNK = MIB
SMALL = 4096
CONCURRENCY = 16
SMALL_REQUESTS = 4000


def read_urllib3(pool: urllib3.PoolManager, url: str) -> int:
    response = pool.request("GET", url, preload_content=False)
    read = sum(len(chunk) for chunk in response.stream(CHUNK))
    response.release_conn()
    return read


async def read_aiohttp(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as response:
        return sum([len(chunk) async for chunk in response.content.iter_chunked(CHUNK)])


async def read_node_reader(nodes: AsyncStorageNodes, url: str) -> int:
    async with AsyncNodeReader(nodes, [url], key="bench", chunk_size=CHUNK) as reader:
        return sum([len(chunk) async for chunk in reader])


async def read_httpx(client: httpx.AsyncClient, url: str) -> int:
    async with client.stream("GET", url) as response:
        return sum([len(chunk) async for chunk in response.aiter_raw()])


class H11Reader:
    """GETs over one kept-alive asyncio connection, parsed by h11."""

    def __init__(self) -> None:
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._connection = h11.Connection(h11.CLIENT)

    async def get(self, url: str) -> int:
        parts = urlsplit(url)
        if self._streams is None:
            self._streams = await asyncio.open_connection(parts.hostname, parts.port, limit=CHUNK)
        reader, writer = self._streams
        request = h11.Request(method="GET", target=parts.path, headers=[("Host", parts.netloc)])
        writer.write(self._connection.send(request) + self._connection.send(h11.EndOfMessage()))
        read = 0
        while True:
            event = self._connection.next_event()
            if event is h11.NEED_DATA:
                self._connection.receive_data(await reader.read(CHUNK))
            elif isinstance(event, h11.Data):
                read += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
        if self._connection.our_state is h11.MUST_CLOSE:
            # h11 keeps no HTTP/1.0 connection alive, and storage nodes answer HTTP/1.0.
            self.close()
            self._streams, self._connection = None, h11.Connection(h11.CLIENT)
        else:
            self._connection.start_next_cycle()
        return read

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()


def timed(run: Callable[[], int], size: int) -> tuple[float, float]:
    """Wall and CPU seconds of ``run()``, which must read ``size`` bytes."""
    wall, cpu = time.perf_counter(), time.process_time()
    read = run()
    if read != size:
        raise SystemExit(f"read {read} bytes, expected {size}")
    return time.perf_counter() - wall, time.process_time() - cpu


class Candidates:
    """Each library's reader, kept open across rounds (as a client's pool would be)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool = urllib3.PoolManager(maxsize=CONCURRENCY)
        self.session = self.loop.run_until_complete(self._session())
        self.nodes = AsyncStorageNodes(
            connect_timeout=120, http_timeout=120, progress_timeout=120, backoff=5
        )
        self.httpx = httpx.AsyncClient(timeout=120)
        self.h11 = H11Reader()

    async def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120), read_bufsize=CHUNK)

    def readers(self) -> dict[str, Callable[[str], int]]:
        run = self.loop.run_until_complete
        return {
            "urllib3": lambda url: read_urllib3(self.pool, url),
            "aiohttp": lambda url: run(read_aiohttp(self.session, url)),
            "AsyncNodeReader": lambda url: run(read_node_reader(self.nodes, url)),
            "httpx": lambda url: run(read_httpx(self.httpx, url)),
            "h11": lambda url: run(self.h11.get(url)),
        }

    def concurrent(self, name: str, url: str) -> tuple[float, float]:
        """Wall and CPU seconds of SMALL_REQUESTS reads of ``url``, CONCURRENCY at a time."""
        each = SMALL_REQUESTS // CONCURRENCY
        if name == "urllib3":
            return self._threads(url, each)
        if name == "h11":
            readers = [H11Reader() for _ in range(CONCURRENCY)]
            task: Callable[[int], Awaitable[int]] = lambda i: readers[i].get(url)
        else:
            get = {
                "aiohttp": lambda: read_aiohttp(self.session, url),
                "AsyncNodeReader": lambda: read_node_reader(self.nodes, url),
                "httpx": lambda: read_httpx(self.httpx, url),
            }[name]
            task = lambda i: get()

        async def worker(index: int) -> int:
            return sum([await task(index) for _ in range(each)])

        async def all_workers() -> int:
            return sum(await asyncio.gather(*(worker(i) for i in range(CONCURRENCY))))

        try:
            return timed(
                lambda: self.loop.run_until_complete(all_workers()), SMALL * each * CONCURRENCY
            )
        finally:
            if name == "h11":
                for reader in readers:
                    reader.close()

    def _threads(self, url: str, each: int) -> tuple[float, float]:
        from concurrent.futures import ThreadPoolExecutor

        def worker(_: int) -> int:
            return sum(read_urllib3(self.pool, url) for _ in range(each))

        with ThreadPoolExecutor(CONCURRENCY) as executor:
            return timed(
                lambda: sum(executor.map(worker, range(CONCURRENCY))), SMALL * each * CONCURRENCY
            )

    def close(self) -> None:
        self.h11.close()
        self.loop.run_until_complete(self.session.close())
        self.loop.run_until_complete(self.nodes.aclose())
        self.loop.run_until_complete(self.httpx.aclose())
        self.loop.run_until_complete(asyncio.sleep(0.1))
        self.loop.close()
        self.pool.clear()


def url_of(client: Client, key: str, data: bytes) -> str:
    client.store_content(key, data, "thumb")
    return client.get_paths(key)[0]


def report(
    title: str, results: dict[str, list[tuple[float, float]]], amount: float, rate: str, cpu: str
) -> None:
    """A table of medians: ``amount`` (MiB or requests) per wall second, CPU per ``cpu`` unit."""
    base_wall, base_cpu = medians(results["urllib3"])
    print(f"\n{title}\n")
    print(f"| library | {rate} | wall vs urllib3 | CPU {cpu} | CPU vs urllib3 |")
    print("|---|---|---|---|---|")
    per = {"s per GiB": 1024 / amount, "ms per request": 1000 / amount}[cpu]
    for name, runs in results.items():
        wall, used = medians(runs)
        print(
            f"| {name} | {amount / wall:,.0f} | {base_wall / wall:.2f} | {used * per:.3g} "
            f"| {used / base_cpu:.2f} |"
        )


def medians(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lab", help="a running real MogileFS lab's directory (its env file)")
    args = parser.parse_args()
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if args.lab:
            env = dict(line.split("=", 1) for line in Path(args.lab, "env").read_text().split())
            trackers, domain = env["MOGILEFS_TEST_TRACKERS"].split(","), env["MOGILEFS_TEST_DOMAIN"]
        else:
            server = DevServer.start(Path(tmp), "bench", {"thumb": 1})
            trackers, domain = [server.tracker], "bench"
        client = Client(domain, trackers)
        candidates = Candidates()
        try:
            big = url_of(client, f"bench-async/{os.getpid()}/big", os.urandom(size))
            small = url_of(client, f"bench-async/{os.getpid()}/small", os.urandom(SMALL))
            readers = candidates.readers()
            streamed: dict[str, list[tuple[float, float]]] = {name: [] for name in readers}
            concurrent: dict[str, list[tuple[float, float]]] = {name: [] for name in readers}
            for _ in range(args.rounds):
                for name, read in readers.items():
                    streamed[name].append(timed(functools.partial(read, big), size))
                    concurrent[name].append(candidates.concurrent(name, small))
            where = "the real lab's mogstored" if args.lab else "the dev MogileFS's node"
            report(
                f"{args.size_mib} MiB from {where}, median of {args.rounds}",
                streamed, args.size_mib, "MiB/s", "s per GiB",
            )  # fmt: skip
            report(
                f"4 KiB files, {CONCURRENCY} concurrent (urllib3: threads), median of {args.rounds}",
                concurrent, SMALL_REQUESTS, "req/s", "ms per request",
            )  # fmt: skip
        finally:
            candidates.close()
            client.close()
            if server is not None:
                server.stop()


if __name__ == "__main__":
    sys.exit(main())

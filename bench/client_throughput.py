"""Client throughput and memory against raw urllib3, side by side in one process.

Stores and reads one file (256 MiB by default) through the MogileFS Client
and, as the baseline, PUTs and GETs the same bytes with a bare urllib3
PoolManager to the same storage node of a DevCluster running in this
process. Timed runs alternate between the two and report the median; memory
is measured in separate runs (tracemalloc slows allocation): the
tracemalloc peak and the growth of peak RSS during the operation. Both
include the dev storage node, which runs in this process too. The files go
to /dev/shm when it exists, so that disk writeback does not drown the
difference being measured.

    .venv/bin/python bench/client_throughput.py [--size-mib 256] [--repeat 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import urllib3

from storages_mogile.client import Client
from storages_mogile.devserver import DevCluster

MIB = 1 << 20
CHUNK = MIB


def write_source(path: Path, size: int) -> str:
    """``size`` random bytes in ``path``; returns their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for offset in range(0, size, 16 * MIB):
            block = os.urandom(min(16 * MIB, size - offset))
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def peak_rss_reset() -> int | None:
    """Reset the kernel's peak-RSS mark; returns the current RSS (bytes) or None."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kib("VmRSS") * 1024
    except OSError:
        return None


def peak_rss() -> int:
    return _status_kib("VmHWM") * 1024


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


class Bench:
    """The four operations, on one cluster and one source file.

    Every store writes a new file on both sides (nothing is overwritten or
    deleted while timing); reads read the latest one.
    """

    def __init__(self, cluster: DevCluster, source: Path, size: int) -> None:
        self.source = source
        self.size = size
        self.client = Client("bench", cluster.trackers, chunk_size=CHUNK, http_timeout=120)
        self.raw = urllib3.PoolManager(
            blocksize=CHUNK, timeout=urllib3.Timeout(connect=3, read=120)
        )
        node = cluster.nodes[0]
        self.raw_base = f"{node.url}/dev{node.devids[0]}/9/999/999/raw-baseline"
        self.stores = 0
        self.raw_url = self.key = ""

    def raw_put(self) -> None:
        self.stores += 1
        self.raw_url = f"{self.raw_base}-{self.stores}.fid"
        with self.source.open("rb") as body:
            response = self.raw.request(
                "PUT", self.raw_url, body=body, headers={"Content-Length": str(self.size)}
            )
        assert 200 <= response.status < 300, response.status

    def client_store(self) -> None:
        self.stores += 1
        self.key = f"bench/file-{self.stores}"
        with self.source.open("rb") as body:
            assert self.client.store_file(self.key, body, "single") == self.size

    def raw_get(self) -> None:
        response = self.raw.request("GET", self.raw_url, preload_content=False)
        total = sum(len(chunk) for chunk in response.stream(CHUNK))
        response.release_conn()
        assert total == self.size, total

    def client_read(self) -> None:
        buffer = bytearray(CHUNK)
        total = 0
        with self.client.read_file(self.key) as stream:
            while count := stream.readinto(buffer):
                total += count
        assert total == self.size, total

    def verify(self, expected: str) -> None:
        """The stored file is the source, byte for byte (untimed)."""
        digest = hashlib.sha256()
        with self.client.read_file(self.key) as stream:
            while data := stream.read(CHUNK):
                digest.update(data)
        assert digest.hexdigest() == expected, "stored file differs from the source"


def timed(operation: Callable[[], None]) -> float:
    started = time.perf_counter()
    operation()
    return time.perf_counter() - started


def memory(operation: Callable[[], None]) -> tuple[int, int | None]:
    """tracemalloc peak and peak-RSS growth (None where unavailable) of one run."""
    rss_before = peak_rss_reset()
    tracemalloc.start()
    try:
        operation()
        traced_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    rss_growth = None if rss_before is None else max(0, peak_rss() - rss_before)
    return traced_peak, rss_growth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256, help="file size in MiB (256)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per operation (5)")
    parser.add_argument(
        "--dir",
        default="/dev/shm" if Path("/dev/shm").is_dir() else None,
        help="where the source file and the cluster live (default: /dev/shm if present)",
    )
    options = parser.parse_args()
    size = options.size_mib * MIB

    with tempfile.TemporaryDirectory(prefix="mogile-bench-", dir=options.dir) as tmp:
        source = Path(tmp) / "source.bin"
        expected = write_source(source, size)
        with DevCluster(
            Path(tmp) / "cluster", nodes=1, domains={"bench": {"single": 1}}
        ) as cluster:
            bench = Bench(cluster, source, size)
            pairs = [
                ("PUT", bench.raw_put, bench.client_store),
                ("GET", bench.raw_get, bench.client_read),
            ]
            bench.raw_put()  # warm up: page cache, connections, directories
            bench.client_store()
            bench.verify(expected)
            rows = []
            for name, raw, client in pairs:
                times: dict[str, list[float]] = {"raw": [], "client": []}
                for _ in range(options.repeat):
                    times["raw"].append(timed(raw))
                    times["client"].append(timed(client))
                raw_s, client_s = (statistics.median(times[side]) for side in ("raw", "client"))
                raw_mem, client_mem = memory(raw), memory(client)
                rows.append((f"urllib3 {name}", raw_s, 1.0, *raw_mem))
                label = "Client store_file" if name == "PUT" else "Client read_file"
                rows.append((label, client_s, raw_s / client_s, *client_mem))
            bench.verify(expected)

    print(
        f"{options.size_mib} MiB in {options.dir or tempfile.gettempdir()}, "
        f"median of {options.repeat} runs, verified byte for byte"
    )
    header = ("operation", "MiB/s", "vs raw", "tracemalloc peak", "peak RSS growth")
    print("{:<18} {:>8} {:>7} {:>17} {:>16}".format(*header))
    for label, seconds, ratio, traced, rss in rows:
        rss_text = "n/a" if rss is None else f"{rss / MIB:.1f} MiB"
        print(
            f"{label:<18} {size / MIB / seconds:>8.0f} {ratio:>6.2f}x "
            f"{traced / MIB:>13.2f} MiB {rss_text:>16}"
        )


if __name__ == "__main__":
    main()

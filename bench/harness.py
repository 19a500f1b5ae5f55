"""Shared parts of the benchmarks: the dev MogileFS in a subprocess, load and memory probes.

The dev MogileFS runs as its own process (``python -m storages_mogile.devserver``),
Django under uvicorn and the proxies through ``tests.e2e.servers``, with the
configurations of docs/serving.md, so no part shares this process's GIL but
the load generator.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import urllib3

if TYPE_CHECKING:
    from typing_extensions import Self

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class DevServer:
    """The dev MogileFS CLI running in a subprocess."""

    process: subprocess.Popen[str]
    tracker: str
    nodes: list[str]

    @classmethod
    def start(cls, data_dir: Path, domain: str, classes: dict[str, int]) -> DevServer:
        """Start it and read its addresses from the lines it prints before ``ready``."""
        args = [
            sys.executable, "-m", "storages_mogile.devserver", "--listen", "127.0.0.1:0",
            "--data-dir", str(data_dir), "--nodes", "2", "--domain", domain,
            *(f"--class={domain}:{name}:{count}" for name, count in classes.items()),
        ]  # fmt: skip
        process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.strip() == "ready":
                break
        text = "".join(lines)
        tracker = re.search(r"^tracker (\S+)$", text, re.MULTILINE)
        nodes = re.findall(r"^node\d+ (\S+)", text, re.MULTILINE)
        if tracker is None or not nodes:
            process.kill()
            raise SystemExit(f"the dev MogileFS did not start:\n{text}")
        return cls(process, tracker.group(1), nodes)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class BenchMogileFS:
    """The MogileFS a benchmark runs against: the real one named by MOGILEFS_TEST_TRACKERS /
    MOGILEFS_TEST_DOMAIN (class ``thumb``, one copy), else a dev MogileFS subprocess."""

    trackers: list[str]
    domain: str
    cls: str
    dev: DevServer | None

    @classmethod
    def start(cls, work: Path) -> BenchMogileFS:
        real = os.environ.get("MOGILEFS_TEST_TRACKERS")
        if real:
            return cls(real.split(","), os.environ["MOGILEFS_TEST_DOMAIN"], "thumb", None)
        dev = DevServer.start(work / "mogile", "bench", {"one": 1})
        return cls([dev.tracker], "bench", "one", dev)

    @property
    def label(self) -> str:
        return "dev (subprocess)" if self.dev else f"real, {','.join(self.trackers)}"

    def stop(self) -> None:
        if self.dev is not None:
            self.dev.stop()


def rss(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid``, its threads and its child processes
    (gunicorn's worker)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    own = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return own + sum(cpu_seconds(int(child)) for child in children.read().split())


class PeakRSS:
    """Samples a process's RSS every 2 ms while used as a context manager."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.start) / MIB

    def __enter__(self) -> Self:
        self.start = self.peak = rss(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, rss(self.pid))

    def _sample(self) -> None:
        while not self._done.wait(0.002):
            self.peak = max(self.peak, rss(self.pid))


def requests_per_second(
    base_url: str, path: str, check: Callable[[urllib3.BaseHTTPResponse], None],
    seconds: float, threads: int,
) -> tuple[float, int]:  # fmt: skip
    """GET ``path`` from ``threads`` keep-alive clients for ``seconds``; (rate, count).

    ``check`` sees every response and raises if it is wrong, which ends the run.
    """
    host, port = base_url.removeprefix("http://").split(":")
    deadline = time.perf_counter() + seconds

    def client() -> int:
        count = 0
        with urllib3.HTTPConnectionPool(host, int(port), maxsize=1, retries=False) as pool:
            while time.perf_counter() < deadline:
                check(pool.request("GET", path))
                count += 1
        return count

    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as executor:
        futures = [executor.submit(client) for _ in range(threads)]
        total = sum(future.result() for future in futures)
    return total / (time.perf_counter() - began), total

"""Store and read one large file through the client, side by side with curl.

Each round runs four processes against the same storage node: ``curl -T``
(PUT) and ``curl -o /dev/null`` (GET) as the baseline, and this script's
``--child store`` / ``--child read``, which store the file with
``Client.store_file`` (a real file, as Django's TemporaryUploadedFile hands
it over) and read it back with ``read_file().read()`` in ``chunk_size``
pieces. Rounds alternate, and the medians are reported:

- wall time of the transfer itself (the child times from just before the
  first tracker request to the end; curl's whole process is counted, which
  favours the baseline by its few milliseconds of start), and the ratio;
- what the Python process costs before that (interpreter start, imports),
  reported apart;
- CPU (user + system) of each transfer, and the ratio;
- the child's peak RSS growth during the transfer (goal: under 32 MiB).

curl's PUT goes to a destination of its own from ``create_open`` (never
closed, so the tracker discards it), on the node the client stored to, with
``Expect:`` turned off: curl would otherwise wait a second for a ``100
Continue`` that mogstored never sends.
Against the real MogileFS named by MOGILEFS_TEST_TRACKERS /
MOGILEFS_TEST_DOMAIN (class ``thumb``: one copy), else a dev MogileFS
subprocess. The source file lives in /dev/shm when it exists.

    .venv/bin/python bench/transfer_limit.py [--mib 256] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import MIB, DevServer  # puts the repo on sys.path

GOAL_RATIO = 1.1
GOAL_MIB = 32
CLASS = "thumb"


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def child(action: str, trackers: list[str], domain: str, key: str, source: str) -> None:
    """Store or read ``key`` in this process; print what it cost as JSON."""
    from storages_mogile.client import Client

    client = Client(domain, trackers, http_timeout=120)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark
    before_rss = status_kib("VmRSS")
    began, cpu = time.perf_counter(), time.process_time()
    if action == "store":
        with open(source, "rb") as file:
            client.store_file(key, file, CLASS)
    else:
        with client.read_file(key) as stream:
            while stream.read(client.chunk_size):
                pass
    result = {
        "seconds": time.perf_counter() - began,
        "cpu": time.process_time() - cpu,
        "growth_mib": (status_kib("VmHWM") - before_rss) / 1024,
    }
    client.close()
    print(json.dumps(result))


def timed(args: list[str]) -> dict[str, float]:
    """Wall and CPU seconds of a whole process, measured with wait4."""
    began = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    output = process.stdout.read().decode() if process.stdout else ""
    errors = process.stderr.read().decode() if process.stderr else ""
    for stream in (process.stdout, process.stderr):
        if stream:
            stream.close()
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise RuntimeError(f"{' '.join(args[:3])} exited {code}: {errors.strip()}")
    result = {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "maxrss_mib": usage.ru_maxrss / 1024,
    }
    if args[0] == sys.executable:
        result.update(json.loads(output))
    return result


class Round:
    """One store and one read each way, on one storage node."""

    def __init__(self, trackers: list[str], domain: str, source: Path, curl: str) -> None:
        from storages_mogile.client import Client

        self.trackers, self.domain, self.source, self.curl = trackers, domain, source, curl
        self.client = Client(domain, trackers)

    def python(self, action: str, key: str) -> dict[str, Any]:
        args = [
            sys.executable,
            __file__,
            "--child",
            action,
            "--key",
            key,
            "--source",
            str(self.source),
        ]
        return timed([*args, "--trackers", ",".join(self.trackers), "--domain", self.domain])

    def node_path(self, key: str) -> str:
        return self.client.get_paths(key, noverify=True)[0]

    def curl_put_url(self, near: str) -> str:
        """A fresh destination from create_open on the node of ``near``."""
        host = near.split("/dev")[0]
        for _ in range(50):
            opened = self.client.trackers.call(
                "create_open",
                {
                    "domain": self.domain,
                    "key": f"bench/curl-{time.time_ns()}",
                    "class": CLASS,
                    "multi_dest": 1,
                },
            )
            for index in range(1, int(opened.get("dev_count", 0)) + 1):
                if opened[f"path_{index}"].startswith(host):
                    return opened[f"path_{index}"]
        raise RuntimeError(f"create_open offered no destination on {host}")

    def once(self, number: int) -> dict[str, dict[str, Any]]:
        key = f"bench/transfer-{number}-{time.time_ns()}"
        results = {"client store": self.python("store", key)}
        path = self.node_path(key)
        results["curl PUT"] = timed(
            [self.curl, "-sf", "-H", "Expect:", "-T", str(self.source), self.curl_put_url(path)]
        )
        results["client read"] = self.python("read", key)
        results["curl GET"] = timed([self.curl, "-sf", "-o", "/dev/null", path])
        self.client.delete(key)
        return results


def report(rounds: list[dict[str, dict[str, Any]]], mib: int) -> None:
    def median(label: str, field: str) -> float:
        return statistics.median(result[label][field] for result in rounds)

    print(f"{mib} MiB, {len(rounds)} rounds, medians; client times exclude the interpreter start")
    print(f"{'':14}{'transfer s':>11}{'MiB/s':>8}{'CPU s':>8}{'peak growth':>13}{'start s':>9}")
    for label in ("curl PUT", "client store", "curl GET", "client read"):
        seconds = median(label, "seconds" if label.startswith("client") else "wall")
        growth = f"{median(label, 'growth_mib'):.1f} MiB" if label.startswith("client") else "-"
        start = f"{median(label, 'wall') - seconds:.3f}" if label.startswith("client") else "-"
        cpu = median(label, "cpu")
        print(f"{label:14}{seconds:>11.3f}{mib / seconds:>8.0f}{cpu:>8.2f}{growth:>13}{start:>9}")
    worst_growth = max(median(label, "growth_mib") for label in ("client store", "client read"))
    for what, ours, theirs in (
        ("store", "client store", "curl PUT"),
        ("read", "client read", "curl GET"),
    ):
        wall = median(ours, "seconds") / median(theirs, "wall")
        cpu = median(ours, "cpu") / median(theirs, "cpu")
        verdict = "meets" if wall <= GOAL_RATIO else "misses"
        print(f"{what}: {wall:.2f}x curl's wall time ({verdict} {GOAL_RATIO}x), {cpu:.2f}x its CPU")
    verdict = "meets" if worst_growth < GOAL_MIB else "misses"
    print(f"worst peak RSS growth {worst_growth:.1f} MiB: {verdict} the {GOAL_MIB} MiB goal")


def write_source(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for offset in range(0, size, 16 * MIB):
            out.write(os.urandom(min(16 * MIB, size - offset)))


def main() -> None:
    parser = argparse.ArgumentParser(description="client transfers against curl")
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", choices=["store", "read"])
    parser.add_argument("--key")
    parser.add_argument("--source")
    parser.add_argument("--trackers")
    parser.add_argument("--domain")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.trackers.split(","), args.domain, args.key, args.source)
        return
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("curl is not installed (apt-get install curl)")
    real = os.environ.get("MOGILEFS_TEST_TRACKERS")
    base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        source = Path(tmp) / "source.bin"
        write_source(source, args.mib * MIB)
        server = None
        if real:
            trackers, domain = real.split(","), os.environ["MOGILEFS_TEST_DOMAIN"]
        else:
            server = DevServer.start(Path(tmp) / "mogile", "bench", {CLASS: 1})
            trackers, domain = [server.tracker], "bench"
        try:
            bench = Round(trackers, domain, source, curl)
            rounds = [bench.once(number) for number in range(args.rounds)]
        finally:
            if server is not None:
                server.stop()
    print(f"MogileFS: {'real, ' + real if real else 'dev (subprocess)'}")
    report(rounds, args.mib)


if __name__ == "__main__":
    main()

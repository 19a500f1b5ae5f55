"""Load with faults on the real MogileFS: what each fault costs, and that nothing is lost.

A small Django site (bench/soak_site.py) runs under gunicorn (3 workers x 4
threads, gthread), with the storage's path cache in a FileBasedCache that
all workers share. 12 client threads (in this process) upload files through
a view that saves with MogileFSStorage and answers the name, and GET
acknowledged files through the serving view in stream mode, checking every
byte. The run goes through windows, each with its fault:

  warm-up, calm, a storage node hung (SIGSTOP, SIGCONT at the end of the
  window), calm, a storage node killed (SIGKILL, restarted halfway by the
  lab's start), a tracker killed (the same), a gunicorn worker killed
  (gunicorn starts another), calm.

Per window, over the requests whose answer ended in it (a request held by a
hung node counts where it ends): throughput (good answers per second),
answers by result, p99 latency, and the machine's load average. A 503 is
checked at once: did the tracker list a copy that a storage node served
(HEAD, right length, answered within LIVE_HEAD_TIMEOUT, by a node that had
not come back from a fault since the GET was sent)? At the end, with every
daemon back, every acknowledged upload is read back from each of its copies and compared with what was
sent. Then the goals of issue 14: no 500, no wrong byte, no lost
acknowledged upload, no 503 for a file that had a live copy, and the
hung-node window at half the calm window's throughput or more. Timings are
reported, never asserted.

It needs a real MogileFS lab (tests/reallab: its daemons are what it stops and kills), and
gunicorn in the virtualenv (a bench-only dependency). The dev MogileFS is
not supported: its trackers and nodes are threads of one process, so none
can be hung or killed on its own. All traffic is on loopback. It stops by
itself, restarts whatever it stopped, and deletes the files it stored
(``--keep`` keeps them).

    .venv/bin/python -m tests.reallab start /tmp/lab
    .venv/bin/pip install gunicorn
    .venv/bin/python bench/soak.py --lab /tmp/lab            # about 6 minutes
    .venv/bin/python bench/soak.py --lab /tmp/lab --quick    # about 2 minutes
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import importlib.util
import logging
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote, urlsplit

import urllib3
from harness import REPO  # puts the repo on sys.path

from storages_mogile.backends.mogile import STAGING_DIR
from storages_mogile.client import Client
from storages_mogile.client.admin import Admin
from storages_mogile.client.errors import MogileFSError, UnknownKeyError
from tests.e2e.servers import Server, free_port

logger = logging.getLogger("soak")

BENCH = Path(__file__).resolve().parent
REQUEST_TIMEOUT = 90.0  # seconds; longer than anything the site may wait for
LIVE_CHECK_DELAY = 2.0  # seconds after a 503 its live-copy check may start
LIVE_HEAD_TIMEOUT = 1.0  # seconds a serving node takes at most to answer a HEAD
CHECKERS = 12  # threads checking 503s for a live copy
HUNG_GOAL = 0.5  # of the first calm window's throughput
GOOD = "200"
STAGING = f"{STAGING_DIR}/"
CHAINED = ("During handling", "The above exception")


# The lab and its faults


class Lab:
    """A running lab (tests/reallab): its settings, its daemons' pids, its start command."""

    EXPECTED: ClassVar[dict[str, str]] = {"node": "mogstored", "tracker": "mogilefsd"}

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.start_command = [sys.executable, "-m", "tests.reallab", "start", str(self.root)]
        env_file = self.root / "env"
        if not env_file.is_file():
            raise SystemExit(
                f"{env_file} is missing: start the lab first ({' '.join(self.start_command)})"
            )
        lines = env_file.read_text().splitlines()
        self.settings = dict(line.split("=", 1) for line in lines if "=" in line)
        with Admin(self.settings["MOGILEFS_TEST_TRACKERS"]) as admin:
            hosts = admin.get_hosts()
        self.nodes = {host["hostname"]: f"{host['hostip']}:{host['http_port']}" for host in hosts}

    def pid(self, daemon: str) -> int:
        """The pid of ``daemon`` (``node1``, ``tracker2``), checked to be that daemon of this lab."""
        pid = int((self.root / "run" / f"{daemon}.pid").read_text())
        program = self.EXPECTED[daemon.rstrip("0123456789")]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        cwd = os.readlink(f"/proc/{pid}/cwd")
        if program not in cmdline or Path(cwd) != self.root:
            raise SystemExit(f"pid {pid} of {daemon} is {cmdline!r} in {cwd}: not the lab's")
        return pid

    def node_address(self, daemon: str) -> str:
        """``host:port`` of a storage node's HTTP (``node1``), as the trackers listed it at start."""
        return self.nodes[daemon]

    def restart(self, log: Path) -> float:
        """Run the lab's start, which restarts whatever daemon is down; its seconds."""
        began = time.monotonic()
        with log.open("ab") as out:
            done = subprocess.run(
                self.start_command, stdout=subprocess.DEVNULL, stderr=out, cwd=REPO, check=False
            )
        if done.returncode:
            raise SystemExit(f"{' '.join(self.start_command)} failed: see {log}")
        return time.monotonic() - began


class Fault:
    """No fault: a calm window. Subclasses break something and repair it."""

    repair_at = 1.0  # fraction of the window after which repair() runs

    def inject(self) -> str:
        return ""

    def repair(self) -> str:
        return ""

    def undo(self) -> None:
        """Repair now if still broken (the run is ending early)."""


class Returns:
    """When each stopped or killed storage node came back (``host:port`` of its HTTP).

    A copy such a node serves after it came back says nothing about a 503
    whose request began before: at that moment the node was not serving.
    A killed node's return is the whole restart, since it starts listening at
    some moment the restart does not tell.
    """

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []

    def record(self, node: str, began: float, ended: float) -> None:
        self.spans.append((node, began, ended))

    def overlap(self, node: str, began: float, ended: float) -> bool:
        return any(
            node == returned and start <= ended and began <= end
            for returned, start, end in self.spans
        )


class HangNode(Fault):
    """A storage node stopped, not dead: its sockets accept and never answer."""

    def __init__(self, lab: Lab, daemon: str, returns: Returns) -> None:
        self.lab, self.daemon, self.returns = lab, daemon, returns
        self.stopped: int | None = None

    def inject(self) -> str:
        self.stopped = self.lab.pid(self.daemon)
        os.kill(self.stopped, signal.SIGSTOP)
        return f"SIGSTOP {self.daemon} (pid {self.stopped})"

    def repair(self) -> str:
        pid, self.stopped = self.stopped, None
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
            now = time.monotonic()
            self.returns.record(self.lab.node_address(self.daemon), now, now)
        return f"SIGCONT {self.daemon}"

    def undo(self) -> None:
        self.repair()


class KillDaemon(Fault):
    """A lab daemon killed, restarted halfway through the window by the lab's start."""

    repair_at = 0.5

    def __init__(self, lab: Lab, daemon: str, log: Path, returns: Returns) -> None:
        self.lab, self.daemon, self.log, self.returns = lab, daemon, log, returns
        self.dead = False

    def inject(self) -> str:
        pid = self.lab.pid(self.daemon)
        os.kill(pid, signal.SIGKILL)
        self.dead = True
        return f"SIGKILL {self.daemon} (pid {pid})"

    def repair(self) -> str:
        began = time.monotonic()
        seconds = self.lab.restart(self.log)
        self.dead = False
        if self.daemon.startswith("node"):
            self.returns.record(self.lab.node_address(self.daemon), began, time.monotonic())
        return f"{self.daemon} restarted by the lab's start in {seconds:.1f} s"

    def undo(self) -> None:
        if self.dead:
            self.repair()


class KillWorker(Fault):
    """A gunicorn worker killed; the arbiter starts another."""

    def __init__(self, gunicorn: Gunicorn) -> None:
        self.gunicorn = gunicorn

    def inject(self) -> str:
        pid = random.choice(self.gunicorn.workers())
        os.kill(pid, signal.SIGKILL)
        return f"SIGKILL gunicorn worker {pid}"

    def repair(self) -> str:
        self.gunicorn.wait_for_workers()
        return f"{len(self.gunicorn.workers())} gunicorn workers running"


# The site


class Gunicorn(Server):
    """bench/soak_site.py under gunicorn; not started."""

    def __init__(self, workdir: Path, trackers: str, domain: str, cls: str,
                 args: argparse.Namespace) -> None:  # fmt: skip
        port = free_port()
        cache = workdir / "path-cache"
        cache.mkdir()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "soak_site",
            "PYTHONPATH": os.pathsep.join([str(BENCH), str(REPO)]),
            "SOAK_TRACKERS": trackers,
            "SOAK_DOMAIN": domain,
            "SOAK_CLASS": cls,
            "SOAK_CACHE_DIR": str(cache),
        }
        command = [
            sys.executable, "-m", "gunicorn", "django.core.wsgi:get_wsgi_application()",
            "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread",
            "--workers", str(args.workers), "--threads", str(args.worker_threads),
            "--graceful-timeout", "5", "--log-level", "warning",
            # Which worker answered what, when, in how long: kept with --keep.
            "--access-logfile", str(workdir / "access.log"),
            "--access-logformat", "%(t)s pid=%(p)s %(m)s %(U)s %(s)s %(L)ss",
        ]  # fmt: skip
        if args.worker_connections:
            command += ["--worker-connections", str(args.worker_connections)]
        super().__init__("gunicorn", command, port, workdir / "gunicorn.log", env)
        self.expected_workers = args.workers

    def workers(self) -> list[int]:
        """Pids of the arbiter's worker processes."""
        assert self.process is not None
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [int(child) for child in children]

    def wait_for_workers(self, seconds: float = 30.0) -> None:
        """Until every worker runs (gunicorn forks them after it listens)."""
        deadline = time.monotonic() + seconds
        while len(self.workers()) < self.expected_workers:
            if time.monotonic() > deadline:
                raise SystemExit(f"gunicorn has {self.workers()} workers:\n{self.log_tail()}")
            time.sleep(0.1)


# The load


@dataclass(frozen=True)
class Outcome:
    """One request: its kind, when it ended (monotonic), its seconds and its result."""

    kind: str  # "upload" or "get"
    ended: float
    seconds: float
    result: str  # the HTTP status, or "refused/reset", "timeout", "cut off", "wrong bytes"


@dataclass
class Ledger:
    """Acknowledged uploads (name -> size, sha256) and every request's outcome."""

    files: dict[str, tuple[int, str]] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    live_checks: list[Future[str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acknowledge(self, name: str, size: int, digest: str) -> None:
        with self.lock:
            self.files[name] = (size, digest)
            self.names.append(name)

    def record(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)


class LiveCopyChecker:
    """Whether a file answered 503 had a copy a storage node would serve, asked at once.

    A check that could not start within LIVE_CHECK_DELAY seconds of the 503
    is not made ("late"): by then a stopped or killed node may be back, and
    a copy it serves again says nothing about the moment of the 503. For the
    same reason a HEAD must be answered within LIVE_HEAD_TIMEOUT, and a copy
    on a node that came back (resumed, or restarted) after the GET was sent
    does not count: that node was not serving when the GET asked for it. The HEAD goes out on a
    pool of its own, so the client's view of the nodes (which it skips as
    wary) plays no part.
    """

    def __init__(self, client: Client, returns: Returns) -> None:
        self.client, self.returns = client, returns
        self.http = urllib3.PoolManager(maxsize=CHECKERS)
        self.pool = ThreadPoolExecutor(CHECKERS, thread_name_prefix="live-copy")

    def submit(self, name: str, size: int, asked: float) -> Future[str]:
        """Check the file whose GET, sent at ``asked``, answered 503 just now."""
        return self.pool.submit(self._check, name, size, asked, time.monotonic())

    def _check(self, name: str, size: int, asked: float, answered: float) -> str:
        """ "live" when a listed copy answers HEAD with the file's length; "came back"
        when only a node back since the GET answers so; "none"; "late" or
        "unknown" (the tracker failed) when it cannot tell."""
        if time.monotonic() - answered > LIVE_CHECK_DELAY:
            return "late"
        try:
            paths = self.client.get_paths(name, noverify=True)
        except MogileFSError as exc:
            logger.warning("live-copy check of %r: %s", name, exc)
            return "unknown"
        result = "none"
        for url in paths:
            try:
                response = self.http.request(
                    "HEAD", url, retries=False, timeout=urllib3.Timeout(LIVE_HEAD_TIMEOUT)
                )
            except urllib3.exceptions.HTTPError:
                continue
            if response.status != 200 or response.headers.get("Content-Length") != str(size):
                continue
            if self.returns.overlap(urlsplit(url).netloc, asked, time.monotonic()):
                logger.info("503 for %r, whose copy at %s came back since the GET", name, url)
                result = "came back"
                continue
            logger.info("503 for %r, which had a live copy at %s", name, url)
            return "live"
        return result


def request(
    port: int, method: str, path: str, body: bytes | None = None
) -> tuple[str, bytes]:  # fmt: skip
    """(result, body) of one request on a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request(method, path, body=body, headers={"Connection": "close"})
        response = connection.getresponse()
        status = str(response.status)
        try:
            return status, response.read()
        except http.client.IncompleteRead:
            return "cut off", b""
    except TimeoutError:
        return "timeout", b""
    except (OSError, http.client.HTTPException):
        return "refused/reset", b""
    finally:
        connection.close()


class LoadClient:
    """One client thread: uploads and GETs until told to stop."""

    def __init__(self, number: int, port: int, ledger: Ledger, checker: LiveCopyChecker,
                 prefix: str, args: argparse.Namespace) -> None:  # fmt: skip
        self.number, self.port, self.ledger, self.checker = number, port, ledger, checker
        self.prefix, self.args = prefix, args
        self.random = random.Random(args.seed * 1000 + number)
        self.count = 0

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self.ledger.names or self.random.random() < self.args.upload_share:
                self.upload()
            else:
                self.get(self.random.choice(self.ledger.names))

    def upload(self) -> None:
        self.count += 1
        data = self.random.randbytes(self.random.randint(1, self.args.max_kib * 1024))
        name = f"{self.prefix}{self.number:02d}-{self.count:06d}.bin"
        began = time.monotonic()
        result, body = request(self.port, "POST", f"/upload/{quote(name)}", data)
        ended = time.monotonic()
        self.ledger.record(Outcome("upload", ended, ended - began, result))
        if result == GOOD:
            self.ledger.acknowledge(body.decode(), len(data), hashlib.sha256(data).hexdigest())

    def get(self, name: str) -> None:
        size, digest = self.ledger.files[name]
        began = time.monotonic()
        result, body = request(self.port, "GET", f"/media/{quote(name)}")
        if result == GOOD and (len(body), hashlib.sha256(body).hexdigest()) != (size, digest):
            result = "wrong bytes"
            logger.error("GET %r: %d bytes that differ from the %d uploaded", name, len(body), size)
        ended = time.monotonic()
        self.ledger.record(Outcome("get", ended, ended - began, result))
        if result == "503":
            check = self.checker.submit(name, size, began)
            with self.ledger.lock:
                self.ledger.live_checks.append(check)


# The windows


@dataclass
class Window:
    """A stretch of the run with one fault, and what happened in it."""

    name: str
    seconds: float
    fault: Fault
    began: float = 0.0
    ended: float = 0.0
    load: float = 0.0  # the machine's 1-minute load average at the end
    events: list[str] = field(default_factory=list)

    def run(self) -> None:
        """Inject the fault, repair it on time, return at the window's end."""
        self.began = time.monotonic()
        self._note(self.fault.inject())
        time.sleep(self.seconds * self.fault.repair_at)
        self._note(self.fault.repair())
        time.sleep(max(0.0, self.began + self.seconds - time.monotonic()))
        self.ended = time.monotonic()
        self.load = os.getloadavg()[0]

    def _note(self, event: str) -> None:
        if event:
            offset = time.monotonic() - self.began
            self.events.append(f"{offset:5.1f} s: {event}")
            logger.info("%s, %s", self.name, event)

    def outcomes(self, ledger: Ledger) -> list[Outcome]:
        """The requests answered (or failed) within the window, wherever they began."""
        return [o for o in ledger.outcomes if self.began <= o.ended < self.ended]

    def throughput(self, ledger: Ledger) -> float:
        good = sum(o.result == GOOD for o in self.outcomes(ledger))
        return good / (self.ended - self.began)


# Pieces of the plan in seconds; --seconds scales them all.
PLAN = (
    ("warm-up", 10, "calm"),  # imports, connections, path cache: not a baseline
    ("calm", 60, "calm"),
    ("node hung", 20, "hang"),
    ("calm after the hang", 40, "calm"),
    ("node killed", 60, "kill node"),
    ("tracker killed", 40, "kill tracker"),
    ("gunicorn worker killed", 30, "kill worker"),
    ("calm at the end", 30, "calm"),
)


# Shortest windows, whatever --seconds says: a hang shorter than the storage's
# node_progress_timeout (5 s by default) would not show what it costs.
MINIMUM = {"hang": 15.0}


def make_windows(seconds: float, lab: Lab, gunicorn: Gunicorn, log: Path,
                 returns: Returns) -> list[Window]:  # fmt: skip
    scale = seconds / sum(length for _, length, _ in PLAN)
    faults: dict[str, Callable[[], Fault]] = {
        "calm": Fault,
        "hang": lambda: HangNode(lab, "node1", returns),
        "kill node": lambda: KillDaemon(lab, "node2", log, returns),
        "kill tracker": lambda: KillDaemon(lab, "tracker1", log, returns),
        "kill worker": lambda: KillWorker(gunicorn),
    }
    return [
        Window(name, max(length * scale, MINIMUM.get(kind, 0.0)), faults[kind]())
        for name, length, kind in PLAN
    ]


# Checking afterwards


def verify(client: Client, ledger: Ledger, jobs: int) -> Counter[str]:
    """Every acknowledged upload read back from each copy: results counted.

    A file is "lost" when no copy of it holds the bytes uploaded (the key is
    gone, or every copy is unreadable or different); copies are counted apart.
    """

    def one(name: str) -> list[str]:
        size, digest = ledger.files[name]
        try:
            paths = client.get_paths(name, noverify=True)
        except UnknownKeyError:
            logger.error("acknowledged upload %r is gone", name)
            return ["lost"]
        except MogileFSError as exc:
            logger.error("acknowledged upload %r not checked: %s", name, exc)
            return ["not checked (tracker error)"]
        copies = [copy_result(client.http, url, size, digest) for url in paths]
        if "copy intact" not in copies:
            logger.error("acknowledged upload %r: no intact copy (%s)", name, copies)
            copies.append("lost")
        return [f"files with {len(paths)} copies", *copies]

    with ThreadPoolExecutor(jobs) as pool:
        return Counter(
            result for results in pool.map(one, list(ledger.files)) for result in results
        )


def copy_result(http: urllib3.PoolManager, url: str, size: int, digest: str) -> str:
    """ "copy intact", "copy with wrong bytes" or "copy unreadable" for the copy at ``url``."""
    try:
        response = http.request("GET", url, retries=False, timeout=10.0)
    except urllib3.exceptions.HTTPError:
        return "copy unreadable"
    if response.status != 200:
        return "copy unreadable"
    if (len(response.data), hashlib.sha256(response.data).hexdigest()) != (size, digest):
        logger.error("copy %s differs from the bytes uploaded", url)
        return "copy with wrong bytes"
    return "copy intact"


def delete_run(client: Client, prefix: str, jobs: int) -> int:
    """Delete every key of this run (acknowledged or not); how many."""
    keys = list(client.iter_keys(prefix))
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(client.delete, keys))
    return len(keys)


def server_errors(log: Path) -> Counter[str]:
    """The last exception of each traceback (chained ones as one) in the site's log."""
    counts: Counter[str] = Counter()
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    in_traceback, pending = False, None
    for line in lines:
        if line.startswith("Traceback"):
            in_traceback = True
        elif in_traceback and line and not line[0].isspace():
            in_traceback, pending = False, line
        elif line and not line[0].isspace() and not line.startswith(CHAINED) and pending:
            counts[_kind(pending)] += 1
            pending = None
    if pending:
        counts[_kind(pending)] += 1
    return counts


def _kind(exception: str) -> str:
    """An exception line without its keys, URLs and numbers, so that alike ones group."""
    for pattern, blank in ((r"'[^']*'", "'…'"), (r"https?://\S+", "URL"), (r"\d+", "N")):
        exception = re.sub(pattern, blank, exception)
    return exception[:200]


# Report


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)] if ordered else 0.0


def report(windows: list[Window], ledger: Ledger, checked: Counter[str],
           live: Counter[str], errors: Counter[str], meta: dict[str, str]) -> None:  # fmt: skip
    for key, value in meta.items():
        print(f"{key}: {value}")
    print()
    print("| window | s | requests | uploads | GETs | good req/s | p99 ms | not 200 | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for window in windows:
        outcomes = window.outcomes(ledger)
        bad = Counter(o.result for o in outcomes if o.result != GOOD)
        uploads = sum(o.kind == "upload" for o in outcomes)
        print(
            f"| {window.name} | {window.ended - window.began:.0f} | {len(outcomes)} | {uploads} "
            f"| {len(outcomes) - uploads} | {window.throughput(ledger):.1f} "
            f"| {p99([o.seconds for o in outcomes]) * 1000:.0f} "
            f"| {', '.join(f'{k}: {v}' for k, v in sorted(bad.items())) or '-'} "
            f"| {window.load:.1f} |"
        )
    print()
    for window in windows:
        for event in window.events:
            print(f"{window.name}: {event}")
    by_kind = Counter((o.kind, o.result) for o in ledger.outcomes)
    print("\nall requests:", ", ".join(f"{k} {r}: {n}" for (k, r), n in sorted(by_kind.items())))
    print("read back, and left over:", ", ".join(f"{k}: {v}" for k, v in sorted(checked.items())))
    print("503s checked for a live copy:", dict(live) or "none")
    if errors:
        print("exceptions in the site's log:")
        for line, count in errors.most_common(12):
            print(f"  {count} x {line}")
    print()
    for goal, value, met in goals(windows, ledger, checked, live):
        print(f"{'met    ' if met else 'NOT MET'}  {goal}: {value}")


def goals(windows: list[Window], ledger: Ledger, checked: Counter[str],
          live: Counter[str]) -> Iterator[tuple[str, str, bool]]:  # fmt: skip
    results = Counter(o.result for o in ledger.outcomes)
    yield "no 500", str(results["500"]), results["500"] == 0
    served, stored = results["wrong bytes"], checked["copy with wrong bytes"]
    wrong = served + stored
    yield "no wrong byte", f"{served} GETs, {stored} stored copies", wrong == 0
    lost, unchecked = checked["lost"], checked["not checked (tracker error)"]
    yield (
        "no lost acknowledged upload",
        f"{lost} of {len(ledger.files)} ({unchecked} not checked)",
        lost == unchecked == 0,
    )
    not_checked = live["unknown"] + live["late"]
    live_503 = f"{live['live']} of {results['503']} 503s ({not_checked} not checked)"
    yield "no 503 for a file with a live copy", live_503, live["live"] == not_checked == 0
    calm = next(w for w in windows if w.name == "calm")
    hung = next(w for w in windows if isinstance(w.fault, HangNode))
    ratio = hung.throughput(ledger) / max(calm.throughput(ledger), 1e-9)
    yield f"hung node at >= {HUNG_GOAL}x calm throughput", f"{ratio:.2f}x", ratio >= HUNG_GOAL


# Running it


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", type=Path, required=True, help="the lab's directory")
    parser.add_argument("--seconds", type=float, default=290.0, help="load time of all windows")
    parser.add_argument("--quick", action="store_true", help="about 70 s of load")
    parser.add_argument("--clients", type=int, default=12, help="client threads")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument("--worker-threads", type=int, default=4, help="threads per worker")
    parser.add_argument(
        "--worker-connections",
        type=int,
        help="connections a worker takes at once (gunicorn's default: 1000, whatever its "
        "threads are doing)",
    )
    parser.add_argument("--upload-share", type=float, default=0.35, help="of the requests")
    parser.add_argument("--max-kib", type=int, default=64, help="uploads are 1 B .. this")
    parser.add_argument("--mogile-class", default="avatar", help="a class with 2 copies")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--keep", action="store_true", help="keep the files and the logs")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 58.0
    return args


def cluster(lab: Lab) -> tuple[str, str]:
    """Trackers and domain: the lab's, which MOGILEFS_TEST_* may name but not contradict."""
    trackers, domain = lab.settings["MOGILEFS_TEST_TRACKERS"], lab.settings["MOGILEFS_TEST_DOMAIN"]
    for name, value in (("MOGILEFS_TEST_TRACKERS", trackers), ("MOGILEFS_TEST_DOMAIN", domain)):
        if os.environ.get(name, value) != value:
            raise SystemExit(
                f"{name}={os.environ[name]} but the lab in {lab.root} has {value}: the faults "
                "would hit another cluster than the load. Unset it or pass that cluster's --lab."
            )
    return trackers, domain


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if importlib.util.find_spec("gunicorn") is None:
        raise SystemExit(f"gunicorn is not installed: {sys.executable} -m pip install gunicorn")
    lab = Lab(args.lab)
    trackers, domain = cluster(lab)
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    prefix = f"soak/{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}/"
    client = Client(domain, trackers, timeout=5.0, http_timeout=3.0, connect_timeout=2.0)
    gunicorn = Gunicorn(workdir, trackers, domain, args.mogile_class, args)
    returns = Returns()
    windows = make_windows(args.seconds, lab, gunicorn, workdir / "lab-start.log", returns)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    staging_before = set(client.iter_keys(STAGING))
    try:
        with gunicorn:
            gunicorn.wait_for_workers()
            ledger = load(windows, gunicorn, LiveCopyChecker(client, returns), prefix, args)
    except BaseException:
        logger.error(
            "stopped early: the keys under %s and the logs in %s are kept", prefix, workdir
        )
        raise
    finally:
        for window in windows:
            window.fault.undo()
    lab.restart(workdir / "lab-start.log")  # every daemon up (the script checks)
    checked = verify(client, ledger, jobs=4)
    checked["staging keys left behind"] = len(set(client.iter_keys(STAGING)) - staging_before)
    live = Counter(check.result() for check in ledger.live_checks)
    setup = {
        "MogileFS": f"the lab in {lab.root} ({trackers}, domain {domain}, "
        f"class {args.mogile_class})",
        "site": f"gunicorn gthread, {args.workers} workers x {args.worker_threads} threads "
        f"({args.worker_connections or 'default'} worker connections), "
        f"FileBasedCache path cache; {args.clients} clients, {args.upload_share:.0%} uploads "
        f"of 1 B..{args.max_kib} KiB",
    }
    report(windows, ledger, checked, live, server_errors(gunicorn.log), setup)
    clean_up(client, prefix, workdir, args.keep)
    print(f"total run: {time.monotonic() - began:.0f} s")
    client.close()


def clean_up(client: Client, prefix: str, workdir: Path, keep: bool) -> None:
    """Delete the run's keys and its work directory, unless ``keep``."""
    if keep:
        print(f"\nkept the keys under {prefix} and the logs in {workdir}")
        return
    deleted = delete_run(client, prefix, jobs=4)
    shutil.rmtree(workdir)
    print(f"\ndeleted the run's {deleted} keys ({prefix}) and {workdir}")


def load(windows: list[Window], gunicorn: Gunicorn, checker: LiveCopyChecker, prefix: str,
         args: argparse.Namespace) -> Ledger:  # fmt: skip
    """Run the clients through every window; the ledger when the last request is done."""
    ledger = Ledger()
    stop = threading.Event()
    clients = [
        LoadClient(n, gunicorn.port, ledger, checker, prefix, args) for n in range(args.clients)
    ]
    threads = [threading.Thread(target=c.run, args=(stop,), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    try:
        for window in windows:
            window.run()
    finally:
        stop.set()
        for window in windows:
            window.fault.undo()
        for thread in threads:
            thread.join()
        checker.pool.shutdown(wait=True)
    return ledger


if __name__ == "__main__":
    main()

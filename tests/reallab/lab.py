"""The lab: a real MogileFS 2.73 cluster on loopback, all its state in one directory.

Two trackers (``mogilefsd``) share one database; two storage nodes
(``mogstored``) have one device each; the domain ``testdomain`` has the
classes ``avatar`` (2 copies) and ``thumb`` (1 copy). The database is a
SQLite file, or a private MariaDB or PostgreSQL server with its data in the
directory. See README.md in this folder for the facts behind each step.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.reallab import processes, system
from tests.reallab.databases import DB_USER, KINDS, Database, DatabaseError
from tests.reallab.processes import Daemon, Identity, program_is, script_is

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
VENDOR = HERE / "vendor"
RELAY = HERE / "relay.py"
PROJECT_ROOT = HERE.parents[1]
SOURCES = ("MogileFS-Server-2.73", "perl-MogileFS-Client-1.17", "MogileFS-Utils-2.30")
DATABASES = tuple(KINDS)
DOMAIN = "testdomain"
CLASSES = {"avatar": 2, "thumb": 1}
SPAN = 7  # ports per lab: base .. base + SPAN - 1
LOWEST_BASE = 10000
# mogstored hands paths to df unquoted: only these characters are safe.
SAFE_PATH = re.compile(r"[A-Za-z0-9._/+@-]+")
# machine-wide, whatever TMPDIR a run has
PORTS_LOCK = Path("/tmp/storages-mogile-reallab-ports.lock")


class LabError(Exception):
    """The lab could not be started or stopped; the message says why and what to do."""


@dataclass(frozen=True)
class Options:
    """The tunables (see README.md); the command line takes them from the environment."""

    min_free_mb: int = 100
    query_jobs: int = 10
    ready_timeout: int = 120
    journal: str = "wal"

    @classmethod
    def from_environment(cls) -> Options:
        def number(name: str, default: int) -> int:
            value = os.environ.get(name, str(default))
            if not value.isdigit():
                raise LabError(f"{name} must be a whole number, not {value!r}")
            return int(value)

        journal = os.environ.get("MOGILEFS_LAB_SQLITE_JOURNAL", "wal")
        if journal not in ("wal", "delete"):
            raise LabError(f"MOGILEFS_LAB_SQLITE_JOURNAL must be wal or delete, not {journal!r}")
        query_jobs = number("MOGILEFS_LAB_QUERY_JOBS", 10)
        if query_jobs < 1:
            raise LabError("MOGILEFS_LAB_QUERY_JOBS must be at least 1")
        return cls(
            min_free_mb=number("MOGILEFS_LAB_MIN_FREE_SPACE", 100),
            query_jobs=query_jobs,
            ready_timeout=number("MOGILEFS_LAB_READY_TIMEOUT", 120),
            journal=journal,
        )


@dataclass(frozen=True)
class Ports:
    """Where each daemon listens, from the port base.

    A tracker reaches every host's management port (the side channel) on
    the same port number (its ``mogstored_stream_port``): node1's is that
    port on 127.0.0.1, and node2's is reached through the relay, which
    listens on that port on 127.0.0.2.
    """

    base: int

    @property
    def trackers(self) -> tuple[int, int]:
        return self.base, self.base + 1

    @property
    def database(self) -> int:
        return self.base + 2

    @property
    def node1_http(self) -> int:
        return self.base + 3

    @property
    def side_channel(self) -> int:
        return self.base + 4

    @property
    def node2_http(self) -> int:
        return self.base + 5

    @property
    def node2_mgmt(self) -> int:
        return self.base + 6


def valid_base(base: int) -> bool:
    return 1024 <= base <= 65535 - SPAN


def choose_base() -> int:
    """A port base whose ports are all free, outside the ephemeral range
    (where outgoing connections take their local ports)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    bases = [
        base
        for base in range(LOWEST_BASE, 65536 - SPAN, SPAN + 1)
        if base + SPAN <= low or base > high
    ]
    random.shuffle(bases)
    for base in bases:
        if base_free(base):
            return base
    raise LabError("no free range of ports found on 127.0.0.1/127.0.0.2")


def base_free(base: int) -> bool:
    """Whether all the ports of ``base`` are free on both loopback addresses."""
    return all(
        processes.port_free(ip, port)
        for ip in ("127.0.0.1", "127.0.0.2")
        for port in range(base, base + SPAN)
    )


@dataclass
class Lab:
    """A lab in ``directory``: ``start()`` it, then ``stop()`` it."""

    directory: Path
    db: str | None = None  # None: the one the directory was set up with, else sqlite
    port_base: int | None = None  # None: the directory's, else a free one
    options: Options = field(default_factory=Options)
    # the processes this object started, by name: for a failed start, these
    # are known to be the lab's even before they have renamed themselves
    _children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.directory = Path(os.path.abspath(self.directory))
        if not SAFE_PATH.fullmatch(str(self.directory)):
            raise LabError(
                f"the lab directory {self.directory} may contain only letters, digits and ._/+@- "
                "(mogstored passes paths to df unquoted)"
            )
        if self.db is not None and self.db not in DATABASES:
            raise LabError(f"the database must be one of {', '.join(DATABASES)}, not {self.db!r}")
        if self.port_base is not None and not valid_base(self.port_base):
            raise LabError(
                f"the port base must be from 1024 to {65535 - SPAN}, not {self.port_base}"
            )

    # -- layout ---------------------------------------------------------------

    @property
    def src(self) -> Path:
        return self.directory / "src"

    @property
    def etc(self) -> Path:
        return self.directory / "etc"

    @property
    def run_dir(self) -> Path:
        return self.directory / "run"

    @property
    def log_dir(self) -> Path:
        return self.directory / "log"

    @property
    def var(self) -> Path:
        return self.directory / "var"

    @property
    def database(self) -> Database:
        """The trackers' database (settled when the lab starts)."""
        return KINDS[self.db or "sqlite"](self)

    @property
    def env_file(self) -> Path:
        return self.directory / "env"

    def tree(self, name: str) -> Path:
        """The unpacked source tree of ``name`` (e.g. ``MogileFS-Server``)."""
        return self.src / name

    @property
    def perl5lib(self) -> str:
        trees = ("MogileFS-Server", "perl-MogileFS-Client", "MogileFS-Utils")
        return os.pathsep.join(str(self.tree(name) / "lib") for name in trees)

    def _state(self, name: str) -> str | None:
        try:
            return (self.etc / name).read_text().strip() or None
        except OSError:
            return None

    @property
    def ports(self) -> Ports:
        base = self.port_base or self._state("port-base")
        if base is None:
            raise LabError(f"{self.directory} has no port base yet: start it first")
        return Ports(int(base))

    @property
    def settings(self) -> dict[str, str]:
        """What a test suite needs: the trackers and the domain."""
        trackers = ",".join(f"127.0.0.1:{port}" for port in self.ports.trackers)
        return {"MOGILEFS_TEST_TRACKERS": trackers, "MOGILEFS_TEST_DOMAIN": DOMAIN}

    # -- daemons --------------------------------------------------------------

    def daemons(self) -> list[Daemon]:
        """The lab's daemons in start order (the database server first)."""
        ports = self.ports
        storage = ["perl", str(self.tree("MogileFS-Server") / "mogstored")]
        tracker = ["perl", str(self.tree("MogileFS-Server") / "mogilefsd")]
        server = self.database.server()
        return [
            *([server] if server else []),
            self._daemon("node1", [*storage, f"--config={self.etc}/node1.conf"],
                         [("127.0.0.1", ports.node1_http), ("127.0.0.1", ports.side_channel)]),
            self._daemon("node2", [*storage, f"--config={self.etc}/node2.conf"],
                         [("127.0.0.2", ports.node2_http), ("127.0.0.2", ports.node2_mgmt)]),
            self._daemon("relay", [sys.executable, str(RELAY), f"127.0.0.2:{ports.side_channel}", f"127.0.0.2:{ports.node2_mgmt}"],
                         [("127.0.0.2", ports.side_channel)]),
            self._daemon("tracker1", [*tracker, f"--config={self.etc}/tracker1.conf"],
                         [("127.0.0.1", ports.trackers[0])]),
            self._daemon("tracker2", [*tracker, f"--config={self.etc}/tracker2.conf"],
                         [("127.0.0.1", ports.trackers[1])]),
        ]  # fmt: skip

    def _daemon(self, name: str, command: list[str], listens: list[tuple[str, int]]) -> Daemon:
        return Daemon(self.identity(name), command, listens, self.directory)

    def identities(self) -> list[Identity]:
        """Every daemon a pid file of this directory may name, in stop order
        (the database server last)."""
        here = self.directory
        return [
            Identity("watchdog", _is_watchdog, here),
            Identity("tracker2", program_is("mogilefsd"), here),
            Identity("tracker1", program_is("mogilefsd"), here),
            Identity("relay", script_is(RELAY), here),
            Identity("node2", program_is("mogstored"), here),
            Identity("node1", program_is("mogstored"), here),
            # the database servers chdir to their data directories
            Identity("mariadb", program_is("mariadbd"), here / "mysql", grace=60),
            # INT is PostgreSQL's fast shutdown (TERM waits for every client to leave)
            Identity("postgres", program_is("postgres"), here / "pgdata", signal.SIGINT, grace=60),
        ]

    def identity(self, name: str) -> Identity:
        return next(identity for identity in self.identities() if identity.name == name)

    def running(self, names: tuple[str, ...]) -> list[str]:
        return [name for name in names if self.identity(name).owns(self.pid_of(name))]

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def pid_of(self, name: str) -> int | None:
        return processes.read_pid(self.pid_file(name))

    # -- start ----------------------------------------------------------------

    def start(self, *, owner: int | None = None) -> dict[str, str]:
        """Start whatever is not running, wait until stores work; the settings.

        With ``owner`` (a pid), a watchdog stops the lab and removes its
        files once that process has gone, however it ended.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._settle_database()
            if self._all_up():
                logger.info("already up in %s", self.directory)
                return self.settings
            started: list[Daemon] = []
            try:
                self._make_directories()
                if owner is not None:
                    self._start_watchdog(owner)
                self._start(started)
            except (system.MachineError, DatabaseError) as exc:
                self._stop_started(started)
                raise LabError(str(exc)) from exc
            except BaseException:
                self._stop_started(started)
                raise
        return self.settings

    def _start(self, started: list[Daemon]) -> None:
        began = time.monotonic()
        (self.etc / "db-type").write_text(f"{self.db}\n")
        self._unpack()
        system.ensure_packages(self.database.kind, self.perl5lib, self.log_dir / "apt.log")
        system.check_free_space(self.var / "node1" / "dev1", self.options.min_free_mb)
        with self._ports_reserved():
            logger.info(
                "starting MogileFS in %s (port base %d, database %s)",
                self.directory,
                self.ports.base,
                self.db,
            )
            self._write_configs()
            self.database.prepare()
            for daemon in self.daemons():
                self._launch(daemon, started)
                if daemon.name == self.db:  # the database server
                    self.database.set_up()
        self._register()
        self._wait_until_stores_work()
        self.env_file.write_text(
            "".join(f"{name}={value}\n" for name, value in self.settings.items())
        )
        (self.run_dir / "ready").write_text(self._ready_stamp())
        logger.info("MogileFS up in %.0f s: %s", time.monotonic() - began, self.settings)

    def _make_directories(self) -> None:
        devices = (self.var / "node1" / "dev1", self.var / "node2" / "dev2")
        for path in (self.run_dir, self.log_dir, self.etc, self.src, *devices):
            path.mkdir(parents=True, exist_ok=True)

    def _settle_database(self) -> None:
        """A directory keeps its database for good (the files' metadata is in it)."""
        existing = self._state("db-type")
        if self.db is None:
            self.db = existing or "sqlite"
        elif existing and existing != self.db:
            raise LabError(
                f"{self.directory} was set up with --db {existing}, not {self.db}: use another "
                "directory, or remove this one first (stop --purge)"
            )

    def _unpack(self) -> None:
        """Unpack the vendored sources into src/ (once); they are used in place."""
        for source in SOURCES:
            name = source.rsplit("-", 1)[0]
            marker = self.tree(name) / ".reallab-unpacked"
            if marker.exists() and marker.read_text() == source:
                continue
            logger.info("unpacking %s", source)
            staging = self.src / f".unpack-{name}"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(self.tree(name), ignore_errors=True)
            with tarfile.open(VENDOR / f"{source}.tar.gz") as archive:
                if hasattr(tarfile, "data_filter"):
                    archive.extractall(staging, filter="data")
                else:  # Python before 3.10.12 has no filters; the archives are the project's own
                    archive.extractall(staging)
            (staging / name).rename(self.tree(name))
            staging.rmdir()
            marker.write_text(source)

    @contextlib.contextmanager
    def _ports_reserved(self) -> Iterator[None]:
        """Settle the port base and keep other labs off it until the daemons listen.

        A lab that is partly running keeps its base. Otherwise the base is the
        one asked for, else its last one if that is free, else one found free,
        chosen under a lock that every lab on this machine takes, so that two
        starts never pick the same ports.
        """
        running = self.running(("tracker2", "tracker1", "relay", "node2", "node1"))
        stored = self._state("port-base")
        if running:
            if self.port_base is not None and str(self.port_base) != stored:
                raise LabError(
                    f"{self.directory} is running with port base {stored}: stop it first, "
                    "then start it with another base"
                )
            self.port_base = int(stored)  # type: ignore[arg-type]
            yield
            return
        with system.host_lock(PORTS_LOCK):
            if self.port_base is None and stored and base_free(int(stored)):
                self.port_base = int(stored)  # the settings of its last run still hold
            if self.port_base is None:
                self.port_base = choose_base()
            busy = [
                f"{ip}:{port}"
                for daemon in self.daemons()
                for ip, port in daemon.listens
                if not processes.port_free(ip, port)
            ]
            if busy:
                raise LabError(
                    f"already in use by processes not started from {self.directory}: "
                    f"{', '.join(busy)} (choose another port base, or stop those processes)"
                )
            (self.etc / "port-base").write_text(f"{self.port_base}\n")
            yield

    def _write_configs(self) -> None:
        ports = self.ports
        dsn = self.database.dsn()
        # mogilefsd refuses to run as root unless told to
        root = "user = root\n" if os.geteuid() == 0 else ""
        for number, port in enumerate(ports.trackers, 1):
            (self.etc / f"tracker{number}.conf").write_text(
                f"# tracker {number}, written by the lab on every start\n"
                f"listen = 127.0.0.1:{port}\ndb_dsn = {dsn}\ndb_user = {DB_USER}\n{root}"
                f"daemonize = 0\nquery_jobs = {self.options.query_jobs}\n"
                "replicate_jobs = 2\ndelete_jobs = 1\nfsck_jobs = 1\nreaper_jobs = 1\n"
                "# the side channel: one port number for every host (Host.pm sidechannel_port)\n"
                f"mogstored_stream_port = {ports.side_channel}\n"
                "# MB a device must have free to take new files\n"
                f"min_free_space = {self.options.min_free_mb}\n"
                "node_timeout = 2\nconn_timeout = 2\n"
            )
        nodes = {
            "node1": ("127.0.0.1", ports.node1_http, ports.side_channel),
            "node2": ("127.0.0.2", ports.node2_http, ports.node2_mgmt),
        }
        for name, (ip, http, mgmt) in nodes.items():
            (self.etc / f"{name}.conf").write_text(
                f"httplisten = {ip}:{http}\nmgmtlisten = {ip}:{mgmt}\n"
                f"docroot = {self.var / name}\nmaxconns = 10000\n"
            )
        trackers = self.settings["MOGILEFS_TEST_TRACKERS"]
        (self.etc / "mogilefs.conf").write_text(
            "# MogileFS-Utils: MOGUTILSCONF=this file (mogupload, mogfetch), --config (mogadm, mogstats)\n"
            f"trackers = {trackers}\ndomain = {DOMAIN}\ndb_dsn = {dsn}\ndb_user = {DB_USER}\n"
        )
        server, utils = self.tree("MogileFS-Server"), self.tree("MogileFS-Utils")
        (self.directory / "tools.sh").write_text(
            "# source me for the lab's MogileFS tools (mogadm, mogupload, mogfetch, mogstats, ...)\n"
            f"export PERL5LIB={self.perl5lib}${{PERL5LIB:+:$PERL5LIB}}\n"
            f"export PATH={utils}:{server}:$PATH\nexport MOGUTILSCONF={self.etc}/mogilefs.conf\n"
        )

    def run_step(self, log_name: str, command: list[str]) -> str:
        """Run a setup step in the directory; its stdout. Its output is logged to log/NAME.log."""
        result = subprocess.run(
            command, cwd=self.directory, env=self._environment(), capture_output=True,
            text=True, timeout=300, check=False,
        )  # fmt: skip
        log = self.log_dir / f"{log_name}.log"
        with log.open("a") as handle:
            handle.write(f"==== {' '.join(command)}\n{result.stdout}{result.stderr}")
        if result.returncode != 0:
            step = " ".join(Path(part).name for part in command[:2])
            raise LabError(f"{step} failed (exit {result.returncode})" + _tail(log))
        return result.stdout

    def _environment(self) -> dict[str, str]:
        inherited = os.environ.get("PERL5LIB")
        perl5lib = self.perl5lib + (os.pathsep + inherited if inherited else "")
        return {**os.environ, "PERL5LIB": perl5lib}

    def _launch(self, daemon: Daemon, started: list[Daemon]) -> None:
        """Start ``daemon`` detached, unless it runs; wait until it listens."""
        pid = self.pid_of(daemon.name)
        ip, port = daemon.listens[0]
        if daemon.identity.owns(pid) and processes.listens(pid, ip, port):  # type: ignore[arg-type]
            logger.info("%s already running (pid %s)", daemon.name, pid)
            return
        # a stale pid file, a crashed daemon's leftover workers, or a daemon that does not listen
        self._stop_one(daemon.identity)
        log = self.log_dir / f"{daemon.name}.log"
        with log.open("ab") as output:
            output.write(f"\n==== {time.strftime('%F %T')} {' '.join(daemon.command)}\n".encode())
            output.flush()
            child = subprocess.Popen(
                daemon.command, cwd=daemon.cwd, env=self._environment(), stdin=subprocess.DEVNULL,
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self._children[daemon.name] = child
        self.pid_file(daemon.name).write_text(f"{child.pid}\n")
        started.append(daemon)
        deadline = time.monotonic() + 30
        while not (processes.listens(child.pid, ip, port) and daemon.identity.owns(child.pid)):
            if child.poll() is not None:
                raise LabError(
                    f"{daemon.name} exited right after starting (exit {child.returncode})"
                    + _tail(log)
                )
            if time.monotonic() > deadline:
                raise LabError(
                    f"{daemon.name} (pid {child.pid}) does not listen on {ip}:{port} after 30 s"
                    + _tail(log)
                )
            time.sleep(0.1)
        for other_ip, other_port in daemon.listens[1:]:
            if not _wait_for(lambda: processes.listens(child.pid, other_ip, other_port), 5):  # noqa: B023
                raise LabError(
                    f"{daemon.name} does not listen on {other_ip}:{other_port}" + _tail(log)
                )
        logger.info("%s up (pid %d) on %s:%d", daemon.name, child.pid, ip, port)

    def _start_watchdog(self, owner: int) -> None:
        self._stop_one(self.identity("watchdog"))
        command = [sys.executable, "-m", "tests.reallab", "watch", str(self.directory), "--owner", str(owner),
                   "--owner-start", processes.start_time(owner) or "?"]  # fmt: skip
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])
            ),
        }
        with (self.log_dir / "watchdog.log").open("ab") as output:
            child = subprocess.Popen(
                command, cwd=self.directory, env=environment, stdin=subprocess.DEVNULL,
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self._children["watchdog"] = child
        self.pid_file("watchdog").write_text(f"{child.pid}\n")

    # -- registration and readiness -------------------------------------------

    def _mogadm(self, *arguments: str) -> str:
        tracker = f"127.0.0.1:{self.ports.trackers[0]}"
        mogadm = str(self.tree("MogileFS-Utils") / "mogadm")
        return self.run_step("mogadm", ["perl", mogadm, f"--trackers={tracker}", *arguments])

    def _register(self) -> None:
        """Hosts, devices, the domain and its classes (what is missing or changed)."""
        hosts = self._mogadm("host", "list")
        ports = self.ports
        for name, ip, port in (
            ("node1", "127.0.0.1", ports.node1_http),
            ("node2", "127.0.0.2", ports.node2_http),
        ):
            current = _host_address(hosts, name)
            if current is None:
                logger.info("mogadm host add %s %s:%d", name, ip, port)
                self._mogadm("host", "add", name, f"--ip={ip}", f"--port={port}", "--status=alive")
            elif current != f"{ip}:{port}":  # a stopped lab started again on other ports
                logger.info("mogadm host modify %s %s:%d (was %s)", name, ip, port, current)
                self._mogadm(
                    "host", "modify", name, f"--ip={ip}", f"--port={port}", "--status=alive"
                )
        devices = self._mogadm("device", "list")
        for host, devid in (("node1", "1"), ("node2", "2")):
            if f"dev{devid}:" not in devices:
                logger.info("mogadm device add %s %s", host, devid)
                self._mogadm("device", "add", host, devid)
        domains = {
            line.split()[0] for line in self._mogadm("domain", "list").splitlines() if line.strip()
        }
        if DOMAIN not in domains:
            self._mogadm("domain", "add", DOMAIN)
        classes = {
            fields[1]: fields[2]
            for fields in (line.split() for line in self._mogadm("class", "list").splitlines())
            if len(fields) > 2 and fields[0] == DOMAIN
        }
        for name, copies in CLASSES.items():
            if name not in classes:
                self._mogadm("class", "add", DOMAIN, name, f"--mindevcount={copies}")
            elif classes[name] != str(copies):
                self._mogadm("class", "modify", DOMAIN, name, f"--mindevcount={copies}")

    def _wait_until_stores_work(self) -> None:
        """Until a 64 KiB file stores (class avatar) and reads back through each tracker.

        A fresh tracker needs a while: devices are reported writable only
        after the monitor's first round, and a class made through one tracker
        reaches the other one's cache some seconds later.
        """
        logger.info("waiting until a file can be stored and read back through each tracker")
        probe, back = self.run_dir / "probe", self.run_dir / "probe.back"
        probe.write_bytes(os.urandom(65536))
        utils = self.tree("MogileFS-Utils")
        deadline = time.monotonic() + self.options.ready_timeout
        try:
            while not all(self._probe(utils, port, probe, back) for port in self.ports.trackers):
                if time.monotonic() > deadline:
                    raise LabError(
                        f"no file could be stored and read back through both trackers within "
                        f"{self.options.ready_timeout} s"
                        + _tail(self.log_dir / "probe.log")
                        + _tail(self.log_dir / "tracker1.log")
                    )
                time.sleep(1)
        finally:
            probe.unlink(missing_ok=True)
            back.unlink(missing_ok=True)

    def _probe(self, utils: Path, port: int, probe: Path, back: Path) -> bool:
        tracker = [
            f"--trackers=127.0.0.1:{port}",
            f"--domain={DOMAIN}",
            f"--key=reallab-probe-{port}-{os.getpid()}",
        ]
        steps = [
            [str(utils / "mogupload"), *tracker, "--class=avatar", f"--file={probe}"],
            [str(utils / "mogfetch"), *tracker, f"--file={back}"],
        ]
        with (self.log_dir / "probe.log").open("a") as log:
            for step in steps:
                if subprocess.run(
                    ["perl", *step],
                    env=self._environment(),
                    stdout=log,
                    stderr=log,
                    timeout=60,
                    check=False,
                ).returncode:
                    return False
            if back.read_bytes() != probe.read_bytes():
                return False
            subprocess.run(
                ["perl", str(utils / "mogdelete"), *tracker],
                env=self._environment(),
                stdout=log,
                stderr=log,
                timeout=60,
                check=False,
            )
        return True

    def _ready_stamp(self) -> str:
        pids = " ".join(f"{d.name}={self.pid_of(d.name)}" for d in self.daemons())
        return f"base={self.ports.base} {pids}\n"

    def _all_up(self) -> bool:
        """Whether every daemon runs and listens as when the lab last became ready."""
        try:
            stamp = (self.run_dir / "ready").read_text()
            if self.port_base is not None and stamp.split()[0] != f"base={self.port_base}":
                return False
            self.port_base = int(stamp.split()[0].partition("=")[2])
            daemons = self.daemons()
        except (OSError, IndexError, ValueError):
            return False
        for daemon in daemons:
            pid = self.pid_of(daemon.name)
            if not (daemon.identity.owns(pid) and processes.listens(pid, *daemon.listens[0])):  # type: ignore[arg-type]
                return False
        return stamp == self._ready_stamp() and all(
            _tracker_answers(port) for port in self.ports.trackers
        )

    # -- stop -----------------------------------------------------------------

    def stop(self, *, purge: bool = False) -> None:
        """Stop the lab's daemons (only its own); ``purge`` also removes what it made."""
        if not self.directory.is_dir():
            return
        with self._locked():
            for identity in self.identities():
                if identity.name == "watchdog" and self.pid_of("watchdog") == os.getpid():
                    self.pid_file("watchdog").unlink(missing_ok=True)
                    continue
                self._stop_one(identity)
            self._reap()
            for leftover in ("ready", "probe", "probe.back"):
                (self.run_dir / leftover).unlink(missing_ok=True)
            if purge:
                self._purge()
        if purge:
            with contextlib.suppress(OSError):
                (self.directory / ".lock").unlink()
                self.directory.rmdir()  # only if nothing else is in it
        logger.info(
            "stopped %s%s", self.directory, " and removed its files" if purge else " (data kept)"
        )

    def _stop_one(self, identity: Identity) -> None:
        try:
            processes.stop(identity, self.pid_file(identity.name))
        except processes.ProcessError as exc:
            raise LabError(f"{exc}; nothing was removed") from exc

    def _stop_started(self, started: list[Daemon]) -> None:
        """After a failed start: stop what it started (the database server last)."""
        for name in [*(daemon.name for daemon in reversed(started)), "watchdog"]:
            with contextlib.suppress(LabError):
                self._stop_one(self.identity(name))
            child = self._children.get(name)
            if child is not None and child.poll() is None:
                # launched a moment ago, it may not have renamed itself yet
                child.kill()
        self._reap()

    def _reap(self) -> None:
        for name, child in list(self._children.items()):
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5 if child.returncode is None else 0)
            if child.returncode is not None:
                del self._children[name]

    def _purge(self) -> None:
        for name in (
            "src",
            "etc",
            "var",
            "log",
            "run",
            "mysql",
            "mysql.new",
            "pgdata",
            "pgdata.new",
        ):
            shutil.rmtree(self.directory / name, ignore_errors=True)
        for name in ("mogilefs.sqlite", "mogilefs.sqlite.new", "mogilefs.sqlite-wal", "mogilefs.sqlite-shm",
                     "mogilefs.sqlite-journal", "env", "tools.sh"):  # fmt: skip
            (self.directory / name).unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One start or stop at a time on this directory."""
        descriptor = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _wait_for(lambda: _try_lock(descriptor), 300):
                raise LabError(
                    f"another start or stop on {self.directory} has held its lock for 5 minutes"
                )
            yield
        finally:
            os.close(descriptor)


def _try_lock(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _is_watchdog(argv: list[str]) -> bool:
    return argv[1:4] == ["-m", "tests.reallab", "watch"]


def _host_address(listing: str, host: str) -> str | None:
    """``IP:port`` of ``host`` in ``mogadm host list`` output."""
    lines = listing.splitlines()
    for index, line in enumerate(lines):
        if line.split()[:1] == [host] or line.startswith(f"{host} "):
            for following in lines[index + 1 :]:
                fields = following.split()
                if fields[:1] == ["IP:"]:
                    return fields[1]
    return None


def _tracker_answers(port: int) -> bool:
    """Whether the tracker answers ``noop`` (with ``OK``)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            connection.sendall(b"noop\r\n")
            return connection.recv(64).startswith(b"OK")
    except OSError:
        return False


def _tail(log: Path, lines: int = 25) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"\n---- last lines of {log}\n" + "\n".join(text)

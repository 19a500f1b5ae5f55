"""The lab's processes: which pid is whose, and stopping only the lab's own.

Every daemon runs in a session of its own (its process group id is its
pid), with a known working directory, and its pid is kept in a pid file.
A pid is only ever signalled when its command line is the expected
program's and its working directory is the expected one, so a recycled
pid or another lab's daemon is never touched.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

LISTEN = "0A"  # the TCP state "listening" in /proc/net/tcp


@dataclass(frozen=True)
class Identity:
    """How to recognise one daemon of the lab among all processes."""

    name: str
    matches: Callable[[list[str]], bool]  # its command line (argv)
    cwd: Path
    first_signal: signal.Signals = signal.SIGTERM
    grace: float = 10.0  # seconds before KILL

    def owns(self, pid: int | None) -> bool:
        """Whether ``pid`` is alive and is this daemon (or one of its workers)."""
        if pid is None or not alive(pid):
            return False
        argv = command_line(pid)
        return bool(argv) and self.matches(argv) and working_directory(pid) == self.cwd


@dataclass
class Daemon:
    """One process of the lab: how to start it and how to recognise it."""

    identity: Identity
    command: list[str]
    listens: list[tuple[str, int]]  # the first is waited for; all must be free before it starts
    cwd: Path

    @property
    def name(self) -> str:
        return self.identity.name


def program_is(name: str) -> Callable[[list[str]], bool]:
    """A matcher for a program that names itself ``name`` (``mogilefsd
    [queryworker]``, ``postgres: checkpointer``) or runs as an absolute path to it."""

    def matches(argv: list[str]) -> bool:
        words = argv[0].split()
        return bool(words) and words[0].rstrip(":").rpartition("/")[2] == name

    return matches


def script_is(path: Path) -> Callable[[list[str]], bool]:
    """A matcher for an interpreter running the script ``path``."""
    return lambda argv: len(argv) > 1 and argv[1] == str(path)


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def start_time(pid: int) -> str | None:
    """The start time of ``pid`` (clock ticks since boot), which tells a pid from its reuse."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


def command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def working_directory(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def group_members(pgid: int) -> list[int]:
    """The pids whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def listens(pid: int, ip: str, port: int) -> bool:
    """Whether ``pid`` holds a TCP socket listening on ``ip:port``."""
    wanted = f"{socket.inet_aton(ip)[::-1].hex().upper()}:{port:04X}"
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    inodes = {
        fields[9]
        for fields in (line.split() for line in table)
        if len(fields) > 9 and fields[3] == LISTEN and fields[1].upper() == wanted
    }
    if not inodes:
        return False
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for descriptor in descriptors:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{descriptor}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


def port_free(ip: str, port: int) -> bool:
    """Whether a listener could bind ``ip:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True


def read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _wait_gone(check: Callable[[], bool], seconds: float) -> bool:
    """Poll ``check`` (true while something is left) for up to ``seconds``; whether it cleared."""
    deadline = time.monotonic() + seconds
    while check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def stop(identity: Identity, pid_file: Path) -> None:
    """Stop the daemon named by ``pid_file`` and its workers, if they are the lab's.

    Raises ``ProcessError`` if one of them survives SIGKILL.
    """
    pid = read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return
    if identity.owns(pid):
        logger.info("stopping %s (pid %d)", identity.name, pid)
        _signal_and_wait([pid], identity, identity.first_signal, identity.grace)
    else:
        logger.info(
            "%s: pid %d is not running (or not the lab's): not signalled", identity.name, pid
        )
    # a daemon's workers share its session; a killed parent can leave them behind
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = [member for member in group_members(pid) if identity.owns(member)]
        if not left:
            break
        logger.info("%s: %s to leftover workers %s", identity.name, sig.name, left)
        _signal_and_wait(left, identity, sig, 5)
    if identity.owns(pid) or any(identity.owns(member) for member in group_members(pid)):
        raise ProcessError(f"{identity.name} (pid {pid}) did not exit")
    pid_file.unlink(missing_ok=True)


def _signal_and_wait(
    pids: list[int], identity: Identity, sig: signal.Signals, grace: float
) -> None:
    for pid in pids:
        _kill(pid, sig)
    remaining = lambda: [pid for pid in pids if identity.owns(pid)]
    if _wait_gone(lambda: bool(remaining()), grace) or sig == signal.SIGKILL:
        return
    logger.info("%s still running after %s s: KILL", identity.name, grace)
    for pid in remaining():
        _kill(pid, signal.SIGKILL)
    _wait_gone(lambda: bool(remaining()), 5)


def _kill(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class ProcessError(Exception):
    """A lab process could not be stopped."""

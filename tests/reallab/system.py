"""What the lab needs from the machine: Debian's Perl modules, the database
server's programs, and a local filesystem with room for new files."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

# The Perl modules MogileFS 2.73 needs, and the Debian packages that have them.
PERL_MODULES = (
    "Danga::Socket 1.56",
    "Perlbal 1.79",
    "Sys::Syscall",
    "Net::Netmask",
    "DBI",
    "DBD::SQLite",
    "IO::AIO",
    "LWP::UserAgent",
    "LWP::Simple",
    "IO::WrapTie",
    "MogileFS::Server",
    "MogileFS::Store::SQLite",
    "Mogstored::HTTPServer::Perlbal",
    "MogileFS::Client",
    "MogileFS::Admin",
)
PACKAGES = (
    "libperlbal-perl",
    "libdanga-socket-perl",
    "libsys-syscall-perl",
    "libnet-netmask-perl",
    "libdbi-perl",
    "libdbd-sqlite3-perl",
    "libio-aio-perl",
    "libwww-perl",
    "libio-stringy-perl",
)
DATABASE_MODULES = {
    "sqlite": (),
    "mariadb": ("DBD::mysql", "MogileFS::Store::MySQL"),
    "postgres": ("DBD::Pg", "MogileFS::Store::Postgres"),
}
DATABASE_PACKAGES = {
    "sqlite": (),
    "mariadb": ("mariadb-server", "libdbd-mysql-perl"),
    "postgres": ("postgresql", "libdbd-pg-perl"),
}
POLICY_RC = Path("/usr/sbin/policy-rc.d")
APT_LOCK = Path("/tmp/storages-mogile-reallab-apt.lock")  # machine-wide, whatever TMPDIR is
APT_TIMEOUT = 900  # seconds for one apt-get run


class MachineError(Exception):
    """The machine lacks something the lab needs, and it could not be installed."""


def perl_modules_load(db: str, perl5lib: str) -> bool:
    """Whether perl can load every module the lab needs for ``db``."""
    if shutil.which("perl") is None:
        return False
    modules = PERL_MODULES + DATABASE_MODULES[db]
    program = " ".join(f"use {module};" for module in modules) + " 1"
    result = subprocess.run(
        ["perl", "-e", program],
        env={**os.environ, "PERL5LIB": perl5lib},
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def mariadb_programs() -> tuple[str, str] | None:
    """``mariadbd`` and ``mariadb-install-db``, if installed."""
    search = os.pathsep.join(["/usr/sbin", "/usr/bin", os.environ.get("PATH", "")])
    server = shutil.which("mariadbd", path=search)
    setup = shutil.which("mariadb-install-db", path=search)
    return (server, setup) if server and setup else None


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian keeps them by version)."""
    candidates = [
        path
        for path in Path("/usr/lib/postgresql").glob("*/bin")
        if path.parent.name.isdigit()
        and (path / "postgres").exists()
        and (path / "initdb").exists()
    ]
    return max(candidates, key=lambda path: int(path.parent.name), default=None)


def database_programs_present(db: str) -> bool:
    if db == "mariadb":
        return mariadb_programs() is not None
    if db == "postgres":
        return postgres_bin() is not None
    return True


def ensure_packages(db: str, perl5lib: str, log: Path) -> None:
    """Install the Debian packages the lab needs for ``db``, if any is missing."""
    if perl_modules_load(db, perl5lib) and database_programs_present(db):
        return
    missing = [name for name in PACKAGES + DATABASE_PACKAGES[db] if not _installed(name)]
    if missing:
        _apt_install(missing, log)
    if not perl_modules_load(db, perl5lib):
        raise MachineError(
            f"Perl modules are still missing after installing {', '.join(missing) or 'nothing'}; "
            f"check with: PERL5LIB={perl5lib} perl -e 'use MogileFS::Server;'"
        )
    if not database_programs_present(db):
        raise MachineError(
            f"the {db} server programs are missing: apt-get install {' '.join(DATABASE_PACKAGES[db])}"
        )


def _installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return result.returncode == 0 and "install ok installed" in result.stdout


def _sudo() -> list[str]:
    """How to run apt-get as root: directly, or through passwordless sudo."""
    if os.geteuid() == 0:
        return []
    if (
        shutil.which("sudo")
        and subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False).returncode == 0
    ):
        return ["sudo", "-n"]
    raise MachineError(
        "Debian packages are missing; install them as root: apt-get install " + " ".join(PACKAGES)
    )


def _apt_install(packages: list[str], log: Path) -> None:
    if shutil.which("apt-get") is None:
        raise MachineError(
            f"packages are missing and there is no apt-get; install: {' '.join(packages)}"
        )
    sudo = _sudo()
    apt = [
        *sudo,
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "-q",
        "-o",
        "DPkg::Lock::Timeout=600",
    ]
    install = [*apt, "install", "-y", "--no-install-recommends", *packages]
    with host_lock(APT_LOCK), _services_denied(sudo), log.open("a") as output:

        def run(command: list[str]) -> bool:
            logger.info("%s", " ".join(command[len(sudo) + 2 :]))
            return (
                subprocess.run(
                    command,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    timeout=APT_TIMEOUT,
                    check=False,
                ).returncode
                == 0
            )

        updated = False
        if not all(_has_candidate(name) for name in packages):  # no package lists yet
            updated = run([*apt, "update"])
        if run(install) or (not updated and run([*apt, "update"]) and run(install)):
            return
    raise MachineError(f"apt-get install {' '.join(packages)} failed; see {log}")


def _has_candidate(package: str) -> bool:
    result = subprocess.run(
        ["apt-cache", "policy", package], capture_output=True, text=True, check=False
    )
    for line in result.stdout.splitlines():
        if line.strip().startswith("Candidate:"):
            return line.split(":", 1)[1].strip() not in ("", "(none)")
    return False


@contextlib.contextmanager
def _services_denied(sudo: list[str]) -> Iterator[None]:
    """Package scripts must not start system services (a MariaDB or PostgreSQL
    of the system's own): without a policy-rc.d, put one that denies every
    start (exit 101) in place for the install."""
    if POLICY_RC.exists():
        yield
        return
    script = "#!/bin/sh\n# temporary, from the storages-mogile test lab\nexit 101\n"
    subprocess.run(
        [*sudo, "tee", str(POLICY_RC)], input=script.encode(), stdout=subprocess.DEVNULL, check=True
    )
    subprocess.run([*sudo, "chmod", "755", str(POLICY_RC)], check=True)
    try:
        yield
    finally:
        subprocess.run([*sudo, "rm", "-f", str(POLICY_RC)], check=False)


@contextlib.contextmanager
def host_lock(path: Path) -> Iterator[None]:
    """An exclusive lock shared by every lab on this machine (any user)."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    with contextlib.suppress(PermissionError):
        os.fchmod(descriptor, 0o666)  # the umask must not lock other users out
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def check_free_space(directory: Path, min_free_mb: int) -> None:
    """Fail unless ``directory`` is on a local filesystem with room for new files.

    mogstored measures its devices with ``df -l``: on a filesystem that lists
    nothing (NFS, 9p) every store fails with ``no_devices``, and a device
    takes new files only while it has ``min_free_space`` free.
    """
    result = subprocess.run(
        ["df", "-l", "-P", "-k", str(directory)], capture_output=True, text=True, check=False
    )
    rows = result.stdout.splitlines()[1:]
    if not rows:
        raise MachineError(
            f"{directory} is not on a local filesystem (df -l lists nothing for it): mogstored "
            "would report no space and every store would fail with no_devices; use a directory "
            "on a local disk, e.g. under /tmp"
        )
    available_mb = int(rows[0].split()[3]) // 1024
    if available_mb < min_free_mb + 8:
        raise MachineError(
            f"only {available_mb} MB free under {directory}; a device takes new files only while "
            f"it has min_free_space ({min_free_mb} MB) free: free some space or set "
            "MOGILEFS_LAB_MIN_FREE_SPACE to fewer MB (e.g. 10)"
        )

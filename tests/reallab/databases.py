"""The trackers' database: a SQLite file, or a private MariaDB or PostgreSQL server.

A server is private to the lab: its data directory is in the lab's
directory, it listens on 127.0.0.1 only, on the lab's database port, and
no system service is touched. ``mogdbsetup`` creates the database
``mogilefs``, the user ``mogile`` (no password) and the tables, once.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from tests.reallab import system
from tests.reallab.processes import Daemon

if TYPE_CHECKING:
    from tests.reallab.lab import Lab

logger = logging.getLogger(__name__)

DB_NAME = "mogilefs"
DB_USER = "mogile"


class DatabaseError(Exception):
    """The database could not be set up."""


class Database:
    """One kind of database, for the lab ``lab``."""

    kind: ClassVar[str]

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def dsn(self) -> str:
        """The trackers' ``db_dsn``."""
        raise NotImplementedError

    def server(self) -> Daemon | None:
        """The server to run, if any."""
        return None

    def prepare(self) -> None:
        """Before any daemon starts: what the database needs on disk (once)."""

    def set_up(self) -> None:
        """Once the server listens: the database, its user and its tables (once)."""

    def _mogdbsetup(self, *arguments: str) -> None:
        mogdbsetup = str(self.lab.tree("MogileFS-Server") / "mogdbsetup")
        self.lab.run_step("mogdbsetup", ["perl", mogdbsetup, *arguments, "--yes"])


class SQLite(Database):
    """A file in the lab's directory, shared by both trackers."""

    kind = "sqlite"

    @property
    def path(self) -> Path:
        return self.lab.directory / "mogilefs.sqlite"

    def dsn(self) -> str:
        return f"DBI:SQLite:dbname={self.path}"

    def prepare(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            logger.info("mogdbsetup (SQLite %s)", self.path)
            fresh = self.path.with_name(self.path.name + ".new")
            fresh.unlink(missing_ok=True)
            self._mogdbsetup("--type=SQLite", f"--dbname={fresh}")
            fresh.rename(self.path)
        # Both trackers write to the one file. With the rollback journal, write
        # bursts hit "database is locked" after the 5 s busy timeout, the query
        # worker answers with a multi-line error, and the tracker kills it and
        # drops the client's connection. WAL avoids that. The mode can only be
        # changed while no tracker has the file open.
        if not self.lab.running(("tracker1", "tracker2")):
            self._set_journal_mode(self.lab.options.journal)

    def _set_journal_mode(self, journal: str) -> None:
        script = (
            'my $d = DBI->connect("dbi:SQLite:dbname=$ARGV[0]", "", "", '
            "{RaiseError => 1, PrintError => 0});"
            ' print scalar $d->selectrow_array("PRAGMA journal_mode=$ARGV[1]")'
        )
        mode = self.lab.run_step(
            "journal", ["perl", "-MDBI", "-e", script, str(self.path), journal]
        )
        if mode.strip() != journal:
            raise DatabaseError(
                f"the SQLite journal mode of {self.path} is {mode.strip()!r}, not {journal}"
            )


class Server(Database):
    """A database server of the lab's own."""

    root_user: ClassVar[str]
    setup_type: ClassVar[str]  # mogdbsetup's --type

    @property
    def port(self) -> int:
        return self.lab.ports.database

    @property
    def done(self) -> Path:
        return self.lab.etc / "db-setup.done"

    def set_up(self) -> None:
        if self.done.exists():
            return
        self._create_user()
        logger.info("mogdbsetup (%s, database %s on 127.0.0.1:%d)", self.kind, DB_NAME, self.port)
        self._mogdbsetup(
            f"--type={self.setup_type}", "--dbhost=127.0.0.1", f"--dbport={self.port}",
            f"--dbname={DB_NAME}", f"--dbrootuser={self.root_user}", f"--dbuser={DB_USER}",
            "--verbose",
        )  # fmt: skip
        self.done.write_text(time.strftime("%F %T\n"))

    def _create_user(self) -> None:
        """What the server needs before mogdbsetup runs."""

    def _fresh(self, final: Path) -> Path:
        """An empty directory to make ``final`` in (renamed once complete)."""
        fresh = final.with_name(final.name + ".new")
        shutil.rmtree(fresh, ignore_errors=True)
        self.done.unlink(missing_ok=True)  # a new data directory has no database yet
        return fresh


class MariaDB(Server):
    """``mariadbd`` with its data in ``DIR/mysql``.

    It reads Debian's /etc/mysql configuration, as the packaged service does,
    so tables get the server's defaults (utf8mb4, utf8mb4_general_ci); the
    command line overrides only where it keeps its files, where it listens
    and as whom it runs.
    """

    kind = "mariadb"
    root_user = "root"
    setup_type = "MySQL"

    @property
    def data(self) -> Path:
        return self.lab.directory / "mysql"

    def dsn(self) -> str:
        return f"DBI:mysql:{DB_NAME};host=127.0.0.1;port={self.port}"

    def server(self) -> Daemon:
        programs = system.mariadb_programs()
        command = [
            programs[0] if programs else "mariadbd", *_as_root(), f"--datadir={self.data}",
            f"--pid-file={self.data}/mariadbd.pid", f"--socket={self.lab.run_dir}/mariadb.sock",
            f"--port={self.port}", "--bind-address=127.0.0.1", "--skip-name-resolve",
        ]  # fmt: skip
        listens = [("127.0.0.1", self.port)]
        return Daemon(self.lab.identity("mariadb"), command, listens, self.lab.directory)

    def prepare(self) -> None:
        if (self.data / "mysql").is_dir():
            return
        programs = system.mariadb_programs()
        fresh = self._fresh(self.data)
        logger.info("mariadb-install-db (%s)", self.data)
        # root without a password: loopback only, and this is a test lab
        self.lab.run_step("mariadb-install-db", [
            programs[1] if programs else "mariadb-install-db", *_as_root(), f"--datadir={fresh}",
            "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve",
        ])  # fmt: skip
        fresh.rename(self.data)

    def _create_user(self) -> None:
        """mogdbsetup's ``GRANT ... IDENTIFIED BY ''`` counts on GRANT creating the
        user; MariaDB 10.11 refuses that for an empty password ("Can't find any
        matching row in the user table"), so the user is made first."""
        statements = [
            f"CREATE USER IF NOT EXISTS '{DB_USER}'@'{host}'" for host in ("%", "localhost")
        ]
        script = (
            'my $d = DBI->connect("DBI:mysql:mysql;host=127.0.0.1;port=" . shift, "root", "",'
            " {RaiseError => 1, PrintError => 0}); $d->do($_) for @ARGV"
        )
        self.lab.run_step(
            "mogdbsetup", ["perl", "-MDBI", "-e", script, str(self.port), *statements]
        )


class PostgreSQL(Server):
    """``postgres`` with its data in ``DIR/pgdata``; as root, run as the user
    postgres (PostgreSQL refuses to run as root)."""

    kind = "postgres"
    root_user = "postgres"
    setup_type = "Postgres"

    @property
    def data(self) -> Path:
        return self.lab.directory / "pgdata"

    def dsn(self) -> str:
        return f"DBI:Pg:dbname={DB_NAME};host=127.0.0.1;port={self.port}"

    def server(self) -> Daemon:
        command = [
            *_as_postgres(), str(_postgres_bin() / "postgres"), "-D", str(self.data),
            "-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}",
            "-c", "unix_socket_directories=", "-c", "logging_collector=off",
        ]  # fmt: skip
        listens = [("127.0.0.1", self.port)]
        return Daemon(self.lab.identity("postgres"), command, listens, self.lab.directory)

    def prepare(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self._let_postgres_in()
        fresh = self._fresh(self.data)
        fresh.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(fresh, "postgres", "postgres")
        logger.info("initdb (%s)", self.data)
        # trust: loopback only; a fixed locale, so that key order does not
        # depend on the caller's LANG
        self.lab.run_step("initdb", [
            *_as_postgres(), str(_postgres_bin() / "initdb"), "-D", str(fresh), "-U", "postgres",
            "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8",
        ])  # fmt: skip
        fresh.rename(self.data)

    def _let_postgres_in(self) -> None:
        """As root, the server runs as postgres, which must reach its data directory."""
        if os.geteuid() != 0:
            return
        directory = self.lab.directory
        directory.chmod(directory.stat().st_mode | 0o011)
        for parent in directory.parents:
            if not parent.stat().st_mode & 0o001:
                raise DatabaseError(
                    f"{parent} is not searchable by other users, so PostgreSQL (user postgres) "
                    f"cannot reach {self.data}: use a lab directory under /tmp"
                )


KINDS: dict[str, type[Database]] = {kind.kind: kind for kind in (SQLite, MariaDB, PostgreSQL)}


def _as_root() -> list[str]:
    return ["--user=root"] if os.geteuid() == 0 else []


def _as_postgres() -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]


def _postgres_bin() -> Path:
    found = system.postgres_bin()
    if found is None:
        raise DatabaseError("PostgreSQL is not installed: apt-get install postgresql")
    return found

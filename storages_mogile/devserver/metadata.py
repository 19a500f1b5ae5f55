"""The dev tracker's metadata: domains, classes, hosts, devices and files.

Everything lives in one SQLite file in the cluster's data directory, in WAL
mode with a busy timeout, so several trackers (threads, or processes) over
the same directory see each other's writes at once. Each thread gets its own
connection. Keys and names are stored as BLOBs of their raw bytes: MogileFS
keys are arbitrary bytes, and BLOB comparison gives the byte order that
``list_keys`` returns.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from storages_mogile.client.protocol import ENCODING, ERRORS

DEFAULT_CLASS = "default"
DEFAULT_MINDEVCOUNT = 2
DEFAULT_REPLPOLICY = "MultipleHosts()"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS domain (
    dmid INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace BLOB NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS class (
    dmid INTEGER NOT NULL,
    classid INTEGER NOT NULL,
    classname BLOB NOT NULL,
    mindevcount INTEGER NOT NULL,
    replpolicy TEXT NOT NULL DEFAULT '',
    hashtype TEXT NOT NULL DEFAULT 'NONE',
    PRIMARY KEY (dmid, classid),
    UNIQUE (dmid, classname)
);
CREATE TABLE IF NOT EXISTS file (
    fid INTEGER PRIMARY KEY,
    dmid INTEGER NOT NULL,
    dkey BLOB NOT NULL,
    length INTEGER NOT NULL,
    classid INTEGER NOT NULL,
    devcount INTEGER NOT NULL,
    UNIQUE (dmid, dkey)
);
CREATE TABLE IF NOT EXISTS tempfile (
    fid INTEGER PRIMARY KEY AUTOINCREMENT,
    createtime INTEGER NOT NULL,
    classid INTEGER NOT NULL,
    dmid INTEGER NOT NULL,
    dkey BLOB NOT NULL,
    devids TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS file_on (
    fid INTEGER NOT NULL,
    devid INTEGER NOT NULL,
    PRIMARY KEY (fid, devid)
);
CREATE INDEX IF NOT EXISTS file_on_devid ON file_on (devid);
CREATE TABLE IF NOT EXISTS file_to_replicate (
    fid INTEGER PRIMARY KEY,
    nexttry REAL NOT NULL,
    fromdevid INTEGER,
    failcount INTEGER NOT NULL DEFAULT 0,
    flags INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS file_to_delete2 (
    fid INTEGER PRIMARY KEY,
    nexttry REAL NOT NULL,
    failcount INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS checksum (
    fid INTEGER PRIMARY KEY,
    hashtype TEXT NOT NULL,
    checksum TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS host (
    hostid INTEGER PRIMARY KEY AUTOINCREMENT,
    hostname BLOB NOT NULL UNIQUE,
    status TEXT NOT NULL,
    hostip TEXT NOT NULL,
    http_port INTEGER,
    http_get_port INTEGER,
    altip TEXT,
    altmask TEXT
);
CREATE TABLE IF NOT EXISTS device (
    devid INTEGER PRIMARY KEY,
    hostid INTEGER NOT NULL,
    status TEXT NOT NULL,
    weight INTEGER NOT NULL DEFAULT 100
);
CREATE TABLE IF NOT EXISTS server_settings (
    field TEXT PRIMARY KEY,
    value TEXT
);
-- The schema level of the MogileFS 2.73 store whose behaviour is emulated.
INSERT OR IGNORE INTO server_settings (field, value) VALUES ('schema_version', '17');
"""


class MetadataError(Exception):
    """A metadata change conflicts with what is stored."""


class Duplicate(MetadataError):
    """The name or number is already taken."""


class HasFiles(MetadataError):
    """The domain or class still has files."""


class HasClasses(MetadataError):
    """The domain still has classes."""


def to_bytes(text: str) -> bytes:
    """The raw bytes of a key or name (surrogate escapes restored)."""
    return text.encode(ENCODING, ERRORS)


def to_text(raw: bytes) -> str:
    """A stored key or name as text (invalid UTF-8 kept as surrogates)."""
    return bytes(raw).decode(ENCODING, ERRORS)


def _rowid(cursor: sqlite3.Cursor) -> int:
    """The rowid an INSERT just created (always set after an INSERT)."""
    return cast(int, cursor.lastrowid)


def _ci_prefix(key: bytes, prefix: bytes) -> bool:
    """ASCII case-insensitive prefix match, as SQLite's LIKE does it."""
    return bytes(key[: len(prefix)]).lower() == prefix.lower()


@dataclass(frozen=True)
class ClassRow:
    """A class of a domain; classid 0 is the domain's ``default`` class."""

    dmid: int
    classid: int
    name: str
    mindevcount: int
    replpolicy: str
    hashtype: str
    implicit: bool = False  # the default class, not changed yet (no row)


@dataclass(frozen=True)
class HostRow:
    """A storage host."""

    hostid: int
    hostname: str
    status: str
    hostip: str
    http_port: int | None
    http_get_port: int | None
    altip: str | None
    altmask: str | None


@dataclass(frozen=True)
class DeviceRow:
    """A storage device, one directory ``/dev<devid>`` on a host."""

    devid: int
    hostid: int
    status: str
    weight: int


@dataclass(frozen=True)
class FileRow:
    """A stored (closed) file."""

    fid: int
    dmid: int
    key: str
    length: int
    classid: int
    devcount: int


@dataclass(frozen=True)
class TempFileRow:
    """A file opened by ``create_open`` and not closed yet."""

    fid: int
    dmid: int
    key: str
    classid: int
    devids: list[int]
    createtime: int


class MetadataStore:
    """All tracker metadata in one SQLite database file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connections: set[sqlite3.Connection] = set()
        self._lock = threading.Lock()
        # One transaction, so trackers starting together create it once.
        self._connection().executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")

    # -- connections -------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            db.create_function("ci_prefix", 2, _ci_prefix, deterministic=True)
            self._local.db = db
            with self._lock:
                self._connections.add(db)
        return db

    def release_thread(self) -> None:
        """Close this thread's connection (call when a worker thread ends)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            self._local.db = None
            with self._lock:
                self._connections.discard(db)
            db.close()

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            connections, self._connections = self._connections, set()
        for db in connections:
            db.close()
        self._local = threading.local()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, taken at once so concurrent writers queue up."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self._connection().execute(sql, params).fetchall()

    def _one(self, sql: str, params: tuple = ()) -> tuple | None:
        return self._connection().execute(sql, params).fetchone()

    # -- domains and classes -----------------------------------------------

    def domains(self) -> list[tuple[int, str]]:
        """``(dmid, name)`` of every domain, by dmid."""
        return [
            (dmid, to_text(name))
            for dmid, name in self._rows("SELECT dmid, namespace FROM domain ORDER BY dmid")
        ]

    def domain_id(self, name: str) -> int | None:
        """The dmid of a domain, or ``None``."""
        row = self._one("SELECT dmid FROM domain WHERE namespace = ?", (to_bytes(name),))
        return row[0] if row else None

    def domain_name(self, dmid: int) -> str:
        """The name of a domain by dmid."""
        row = self._one("SELECT namespace FROM domain WHERE dmid = ?", (dmid,))
        return to_text(row[0]) if row else ""

    def create_domain(self, name: str) -> int:
        """Add a domain; Duplicate if the name is taken."""
        try:
            with self._transaction() as db:
                return _rowid(
                    db.execute("INSERT INTO domain (namespace) VALUES (?)", (to_bytes(name),))
                )
        except sqlite3.IntegrityError as exc:
            raise Duplicate(name) from exc

    def delete_domain(self, dmid: int) -> None:
        """Remove a domain: HasFiles if it has files, HasClasses if classes."""
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM file WHERE dmid = ? LIMIT 1", (dmid,)).fetchone():
                raise HasFiles(dmid)
            if db.execute(
                "SELECT 1 FROM class WHERE dmid = ? AND classid != 0 LIMIT 1", (dmid,)
            ).fetchone():
                raise HasClasses(dmid)
            db.execute("DELETE FROM class WHERE dmid = ?", (dmid,))
            db.execute("DELETE FROM domain WHERE dmid = ?", (dmid,))

    def classes(self, dmid: int) -> list[ClassRow]:
        """The classes of a domain, the ``default`` class included."""
        rows = [
            self._class_row(dmid, row)
            for row in self._rows(
                "SELECT classid, classname, mindevcount, replpolicy, hashtype FROM class WHERE dmid = ? ORDER BY classid",
                (dmid,),
            )
        ]
        if not any(row.classid == 0 for row in rows):
            rows.append(self._implicit_default(dmid))
        return rows

    def class_by_name(self, dmid: int, name: str) -> ClassRow | None:
        """A class of a domain by name (``default`` always exists)."""
        row = self._one(
            "SELECT classid, classname, mindevcount, replpolicy, hashtype FROM class WHERE dmid = ? AND classname = ?",
            (dmid, to_bytes(name)),
        )
        if row:
            return self._class_row(dmid, row)
        return self._implicit_default(dmid) if name == DEFAULT_CLASS else None

    def class_by_id(self, dmid: int, classid: int) -> ClassRow:
        """A class by id; an unknown id reads as the ``default`` class."""
        row = self._one(
            "SELECT classid, classname, mindevcount, replpolicy, hashtype FROM class WHERE dmid = ? AND classid = ?",
            (dmid, classid),
        )
        return self._class_row(dmid, row) if row else self._implicit_default(dmid)

    @staticmethod
    def _class_row(dmid: int, row: tuple) -> ClassRow:
        classid, name, mindevcount, replpolicy, hashtype = row
        return ClassRow(
            dmid, classid, to_text(name), mindevcount, replpolicy or DEFAULT_REPLPOLICY, hashtype
        )

    @staticmethod
    def _implicit_default(dmid: int) -> ClassRow:
        return ClassRow(
            dmid, 0, DEFAULT_CLASS, DEFAULT_MINDEVCOUNT, DEFAULT_REPLPOLICY, "NONE", implicit=True
        )

    def create_class(self, dmid: int, name: str) -> int:
        """Add a class (``default`` gets classid 0); Duplicate if it exists."""
        try:
            with self._transaction() as db:
                if name == DEFAULT_CLASS:
                    classid = 0
                else:
                    (top,) = db.execute(
                        "SELECT COALESCE(MAX(classid), 0) FROM class WHERE dmid = ?", (dmid,)
                    ).fetchone()
                    classid = top + 1
                db.execute(
                    "INSERT INTO class (dmid, classid, classname, mindevcount) VALUES (?, ?, ?, ?)",
                    (dmid, classid, to_bytes(name), DEFAULT_MINDEVCOUNT),
                )
                return classid
        except sqlite3.IntegrityError as exc:
            raise Duplicate(name) from exc

    def update_class(
        self,
        dmid: int,
        classid: int,
        *,
        mindevcount: int,
        replpolicy: str | None = None,
        hashtype: str | None = None,
    ) -> None:
        """Change a class's mindevcount and, when given, policy and hash type."""
        with self._transaction() as db:
            db.execute(
                "UPDATE class SET mindevcount = ? WHERE dmid = ? AND classid = ?",
                (mindevcount, dmid, classid),
            )
            if replpolicy:
                db.execute(
                    "UPDATE class SET replpolicy = ? WHERE dmid = ? AND classid = ?",
                    (replpolicy, dmid, classid),
                )
            if hashtype:
                db.execute(
                    "UPDATE class SET hashtype = ? WHERE dmid = ? AND classid = ?",
                    (hashtype, dmid, classid),
                )
            # Files of the class may now have too few or too many copies.
            db.execute(
                "INSERT OR IGNORE INTO file_to_replicate (fid, nexttry) SELECT fid, 0 FROM file WHERE dmid = ? AND classid = ?",
                (dmid, classid),
            )

    def delete_class(self, dmid: int, classid: int) -> None:
        """Remove a class; HasFiles if files still use it."""
        with self._transaction() as db:
            if db.execute(
                "SELECT 1 FROM file WHERE dmid = ? AND classid = ? LIMIT 1", (dmid, classid)
            ).fetchone():
                raise HasFiles(classid)
            db.execute("DELETE FROM class WHERE dmid = ? AND classid = ?", (dmid, classid))

    # -- hosts and devices -------------------------------------------------

    _HOST_COLUMNS = "hostid, hostname, status, hostip, http_port, http_get_port, altip, altmask"

    def hosts(self) -> list[HostRow]:
        """Every host, by hostid."""
        return [
            self._host_row(row)
            for row in self._rows(f"SELECT {self._HOST_COLUMNS} FROM host ORDER BY hostid")
        ]

    def host(self, hostid: int) -> HostRow | None:
        """A host by id, or ``None``."""
        row = self._one(f"SELECT {self._HOST_COLUMNS} FROM host WHERE hostid = ?", (hostid,))
        return self._host_row(row) if row else None

    def host_by_name(self, hostname: str) -> HostRow | None:
        """A host by name, or ``None``."""
        row = self._one(
            f"SELECT {self._HOST_COLUMNS} FROM host WHERE hostname = ?", (to_bytes(hostname),)
        )
        return self._host_row(row) if row else None

    @staticmethod
    def _host_row(row: tuple) -> HostRow:
        hostid, hostname, *rest = row
        return HostRow(hostid, to_text(hostname), *rest)

    def create_host(self, hostname: str, hostip: str, status: str) -> int:
        """Add a host; Duplicate if the name is taken."""
        try:
            with self._transaction() as db:
                return _rowid(
                    db.execute(
                        "INSERT INTO host (hostname, hostip, status) VALUES (?, ?, ?)",
                        (to_bytes(hostname), hostip, status),
                    )
                )
        except sqlite3.IntegrityError as exc:
            raise Duplicate(hostname) from exc

    def update_host(self, hostid: int, fields: dict[str, str | int | None]) -> None:
        """Set some of a host's columns (status, hostip, ports, altip, altmask)."""
        allowed = {"status", "hostip", "http_port", "http_get_port", "altip", "altmask"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown host fields {sorted(unknown)}")
        with self._transaction() as db:
            for column, value in fields.items():
                db.execute(f"UPDATE host SET {column} = ? WHERE hostid = ?", (value, hostid))

    def delete_host(self, hostid: int) -> None:
        """Remove a host (the caller checks it has no devices)."""
        with self._transaction() as db:
            db.execute("DELETE FROM host WHERE hostid = ?", (hostid,))

    def devices(self) -> list[DeviceRow]:
        """Every device, by devid."""
        return [
            DeviceRow(*row)
            for row in self._rows("SELECT devid, hostid, status, weight FROM device ORDER BY devid")
        ]

    def device(self, devid: int) -> DeviceRow | None:
        """A device by id, or ``None``."""
        row = self._one(
            "SELECT devid, hostid, status, weight FROM device WHERE devid = ?", (devid,)
        )
        return DeviceRow(*row) if row else None

    def create_device(self, devid: int, hostid: int, status: str) -> None:
        """Add a device; Duplicate if the devid is taken."""
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO device (devid, hostid, status) VALUES (?, ?, ?)",
                    (devid, hostid, status),
                )
        except sqlite3.IntegrityError as exc:
            raise Duplicate(devid) from exc

    def set_device_state(self, devid: int, status: str) -> None:
        """Change a device's state; files on a dead device need new copies."""
        with self._transaction() as db:
            db.execute("UPDATE device SET status = ? WHERE devid = ?", (status, devid))
            if status == "dead":
                db.execute(
                    "INSERT OR IGNORE INTO file_to_replicate (fid, nexttry) SELECT fid, 0 FROM file_on WHERE devid = ?",
                    (devid,),
                )

    def set_device_weight(self, devid: int, weight: int) -> None:
        """Change a device's weight."""
        with self._transaction() as db:
            db.execute("UPDATE device SET weight = ? WHERE devid = ?", (weight, devid))

    # -- temp files ---------------------------------------------------------

    def register_tempfile(
        self, fid: int | None, dmid: int, key: str, classid: int, devids: list[int]
    ) -> int:
        """Open a file; ``fid`` ``None`` picks the next one. Duplicate if taken."""
        try:
            with self._transaction() as db:
                if (
                    fid is not None
                    and db.execute("SELECT 1 FROM file WHERE fid = ?", (fid,)).fetchone()
                ):
                    raise Duplicate(fid)
                inserted = db.execute(
                    "INSERT INTO tempfile (fid, createtime, classid, dmid, dkey, devids)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        fid,
                        int(time.time()),
                        classid,
                        dmid,
                        to_bytes(key),
                        ",".join(map(str, devids)),
                    ),
                )
                return _rowid(inserted)
        except sqlite3.IntegrityError as exc:
            raise Duplicate(fid) from exc

    def tempfile(self, fid: int) -> TempFileRow | None:
        """An open file by fid, or ``None``."""
        row = self._one(
            "SELECT fid, dmid, dkey, classid, devids, createtime FROM tempfile WHERE fid = ?",
            (fid,),
        )
        return self._tempfile_row(row) if row else None

    def take_tempfile(self, fid: int) -> TempFileRow | None:
        """Remove an open file and return it; ``None`` if there is none.

        Only one caller can take a given temp file, so a file closed twice
        at the same moment is closed once.
        """
        with self._transaction() as db:
            row = db.execute(
                "SELECT fid, dmid, dkey, classid, devids, createtime FROM tempfile WHERE fid = ?",
                (fid,),
            ).fetchone()
            if row:
                db.execute("DELETE FROM tempfile WHERE fid = ?", (fid,))
        return self._tempfile_row(row) if row else None

    @staticmethod
    def _tempfile_row(row: tuple) -> TempFileRow:
        fid, dmid, dkey, classid, devids, createtime = row
        return TempFileRow(
            fid, dmid, to_text(dkey), classid, [int(d) for d in devids.split(",") if d], createtime
        )

    # -- files ---------------------------------------------------------------

    _FILE_COLUMNS = "fid, dmid, dkey, length, classid, devcount"

    @staticmethod
    def _file_row(row: tuple) -> FileRow:
        fid, dmid, dkey, length, classid, devcount = row
        return FileRow(fid, dmid, to_text(dkey), length, classid, devcount)

    def file_by_key(self, dmid: int, key: str) -> FileRow | None:
        """The file stored under a key, or ``None``."""
        row = self._one(
            f"SELECT {self._FILE_COLUMNS} FROM file WHERE dmid = ? AND dkey = ?",
            (dmid, to_bytes(key)),
        )
        return self._file_row(row) if row else None

    def file(self, fid: int) -> FileRow | None:
        """A file by fid, or ``None``."""
        row = self._one(f"SELECT {self._FILE_COLUMNS} FROM file WHERE fid = ?", (fid,))
        return self._file_row(row) if row else None

    def files_after(self, fid: int, count: int) -> list[FileRow]:
        """Up to ``count`` files with a fid above ``fid``, by fid."""
        return [
            self._file_row(row)
            for row in self._rows(
                f"SELECT {self._FILE_COLUMNS} FROM file WHERE fid > ? ORDER BY fid LIMIT ?",
                (fid, count),
            )
        ]

    def keys_like(self, dmid: int, prefix: str, after: str, limit: int) -> list[str]:
        """Keys of a domain in byte order, after ``after``, matching ``prefix``.

        The prefix matches case-insensitively for ASCII letters, as
        mogilefsd's ``LIKE 'prefix%'`` does on SQLite. A negative limit
        means no limit (SQLite's ``LIMIT -1``).
        """
        rows = self._rows(
            "SELECT dkey FROM file WHERE dmid = ? AND dkey > ? AND ci_prefix(dkey, ?) ORDER BY dkey LIMIT ?",
            (dmid, to_bytes(after), to_bytes(prefix), limit),
        )
        return [to_text(row[0]) for row in rows]

    def devids_of(self, fid: int) -> list[int]:
        """The devices holding a copy of a fid, in the order they got it."""
        return [
            row[0]
            for row in self._rows("SELECT devid FROM file_on WHERE fid = ? ORDER BY rowid", (fid,))
        ]

    def close_file(self, temp: TempFileRow, key: str, devid: int, length: int) -> FileRow | None:
        """Make an uploaded temp file the file of ``key``; returns the replaced file.

        The file starts with the one copy that was uploaded and is queued
        for replication. A file already stored under the key is deleted
        (its storage copies are queued for removal).
        """
        with self._transaction() as db:
            old = db.execute(
                f"SELECT {self._FILE_COLUMNS} FROM file WHERE dmid = ? AND dkey = ?",
                (temp.dmid, to_bytes(key)),
            ).fetchone()
            if old:
                self._delete_file(db, old[0])
            db.execute(
                "INSERT OR IGNORE INTO file_on (fid, devid) VALUES (?, ?)", (temp.fid, devid)
            )
            db.execute(
                "INSERT OR REPLACE INTO file (fid, dmid, dkey, length, classid, devcount) VALUES (?, ?, ?, ?, ?, 1)",
                (temp.fid, temp.dmid, to_bytes(key), length, temp.classid),
            )
            db.execute(
                "INSERT OR REPLACE INTO file_to_replicate (fid, nexttry) VALUES (?, 0)", (temp.fid,)
            )
        return self._file_row(old) if old else None

    def discard_upload(self, fid: int, devid: int) -> None:
        """Forget a failed or keyless upload and queue its copy for removal."""
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO file_on (fid, devid) VALUES (?, ?)", (fid, devid))
            self._delete_file(db, fid)

    def delete_file(self, fid: int) -> None:
        """Delete a file; its storage copies are removed later by the worker."""
        with self._transaction() as db:
            self._delete_file(db, fid)

    @staticmethod
    def _delete_file(db: sqlite3.Connection, fid: int) -> None:
        db.execute("DELETE FROM file WHERE fid = ?", (fid,))
        db.execute("DELETE FROM tempfile WHERE fid = ?", (fid,))
        db.execute(
            "INSERT OR REPLACE INTO file_to_delete2 (fid, nexttry) VALUES (?, ?)",
            (fid, int(time.time())),
        )

    def rename(self, fid: int, key: str) -> bool:
        """Give a file a new key; ``False`` if the key is taken."""
        try:
            with self._transaction() as db:
                db.execute("UPDATE file SET dkey = ? WHERE fid = ?", (to_bytes(key), fid))
        except sqlite3.IntegrityError:
            return False
        return True

    def set_file_class(self, fid: int, classid: int) -> None:
        """Move a file to another class and queue it for (de)replication."""
        with self._transaction() as db:
            db.execute("UPDATE file SET classid = ? WHERE fid = ?", (classid, fid))
            db.execute(
                "INSERT OR REPLACE INTO file_to_replicate (fid, nexttry) VALUES (?, 0)", (fid,)
            )

    def add_copy(self, fid: int, devid: int) -> bool:
        """Record a new copy of a file; ``False`` if the file is gone meanwhile."""
        with self._transaction() as db:
            if not db.execute("SELECT 1 FROM file WHERE fid = ?", (fid,)).fetchone():
                return False
            db.execute("INSERT OR IGNORE INTO file_on (fid, devid) VALUES (?, ?)", (fid, devid))
            self._count_copies(db, fid)
        return True

    def remove_copy(self, fid: int, devid: int) -> None:
        """Forget the copy of a file on a device."""
        with self._transaction() as db:
            db.execute("DELETE FROM file_on WHERE fid = ? AND devid = ?", (fid, devid))
            self._count_copies(db, fid)

    @staticmethod
    def _count_copies(db: sqlite3.Connection, fid: int) -> None:
        db.execute(
            "UPDATE file SET devcount = (SELECT COUNT(*) FROM file_on WHERE fid = ?) WHERE fid = ?",
            (fid, fid),
        )

    # -- checksums -------------------------------------------------------------

    def checksum(self, fid: int) -> tuple[str, str] | None:
        """``(hashtype, hex digest)`` stored for a fid, or ``None``."""
        row = self._one("SELECT hashtype, checksum FROM checksum WHERE fid = ?", (fid,))
        return (row[0], row[1]) if row else None

    def save_checksum(self, fid: int, hashtype: str, digest: str) -> None:
        """Store the checksum of a fid."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO checksum (fid, hashtype, checksum) VALUES (?, ?, ?)",
                (fid, hashtype, digest),
            )

    # -- queues ---------------------------------------------------------------

    def replication_entry(self, fid: int) -> dict[str, int | None] | None:
        """The replication queue row of a fid, or ``None``."""
        row = self._one(
            "SELECT fid, nexttry, fromdevid, failcount, flags FROM file_to_replicate WHERE fid = ?",
            (fid,),
        )
        if not row:
            return None
        return {
            "fid": row[0],
            "nexttry": int(row[1]),
            "fromdevid": row[2],
            "failcount": row[3],
            "flags": row[4],
        }

    def deletion_entry(self, fid: int) -> dict[str, int] | None:
        """The deletion queue row of a fid, or ``None``."""
        row = self._one("SELECT fid, nexttry, failcount FROM file_to_delete2 WHERE fid = ?", (fid,))
        return {"fid": row[0], "nexttry": int(row[1]), "failcount": row[2]} if row else None

    def due_replications(self, now: float, limit: int = 100) -> list[tuple[int, int]]:
        """``(fid, failcount)`` of queued replications that are due."""
        return self._rows(
            "SELECT fid, failcount FROM file_to_replicate WHERE nexttry <= ? ORDER BY nexttry, fid LIMIT ?",
            (now, limit),
        )

    def due_deletions(self, now: float, limit: int = 100) -> list[tuple[int, int]]:
        """``(fid, failcount)`` of queued deletions that are due."""
        return self._rows(
            "SELECT fid, failcount FROM file_to_delete2 WHERE nexttry <= ? ORDER BY nexttry, fid LIMIT ?",
            (now, limit),
        )

    def retry_replication(self, fid: int, nexttry: float) -> None:
        """Try a replication again later."""
        with self._transaction() as db:
            db.execute(
                "UPDATE file_to_replicate SET nexttry = ?, failcount = failcount + 1 WHERE fid = ?",
                (nexttry, fid),
            )

    def finish_replication(self, fid: int) -> None:
        """Take a fid off the replication queue."""
        with self._transaction() as db:
            db.execute("DELETE FROM file_to_replicate WHERE fid = ?", (fid,))

    def retry_deletion(self, fid: int, nexttry: float) -> None:
        """Try a deletion again later."""
        with self._transaction() as db:
            db.execute(
                "UPDATE file_to_delete2 SET nexttry = ?, failcount = failcount + 1 WHERE fid = ?",
                (nexttry, fid),
            )

    def finish_deletion(self, fid: int) -> None:
        """All copies of a deleted fid are gone: forget it entirely."""
        with self._transaction() as db:
            db.execute("DELETE FROM file_to_delete2 WHERE fid = ?", (fid,))
            db.execute("DELETE FROM file_to_replicate WHERE fid = ?", (fid,))
            db.execute("DELETE FROM checksum WHERE fid = ?", (fid,))

    # -- server settings ---------------------------------------------------------

    def server_settings(self) -> dict[str, str]:
        """All server settings."""
        return {
            field: value
            for field, value in self._rows(
                "SELECT field, value FROM server_settings ORDER BY field"
            )
        }

"""The MogileFS client: store, read, list and manage the files of one domain.

Method names and arguments follow pymogile and MogileFS::Client, so code
written for those ports over. The operations themselves are written once,
without I/O (:mod:`.operations`), and shared with the asyncio
:class:`~.aioclient.AsyncClient`; here tracker requests go through a
:class:`~.trackers.TrackerPool` (failover, retries), file bytes through
:class:`~.nodes.StorageNodes` (urllib3, streamed both ways).
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, TypeVar

import urllib3

from .errors import StorageNodeError
from .files import NewFile, NodeReader, UploadSource
from .nodes import NodeStat, StorageNodes
from .operations import (
    STORE_ATTEMPTS,
    Emit,
    FileInfo,
    Location,
    Operation,
    Operations,
    ReadOptions,
    Settings,
    Stepper,
    Transport,
    check_class,
    check_key,
    path_fid,
)
from .trackers import TrackerPool

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

__all__ = ["STORE_ATTEMPTS", "Client", "FileInfo", "Location", "path_fid"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Client(Operations):
    """Files in one MogileFS domain.

    ``trackers`` is a list of ``host:port`` strings (or one comma-separated
    string). ``connect_timeout``/``timeout`` bound the tracker connect and
    each reply; a failed tracker is tried after the others for ``backoff``
    seconds (a storage node that failed rests so at first, see
    :mod:`.health`). Storage nodes are reached through ``http`` (a urllib3
    PoolManager; one is made when not given), moving ``chunk_size`` bytes at
    a time. A node that moves no byte for ``node_progress_timeout`` seconds
    is given up by a read, and by an upload for its next destination; the
    last destination left is waited for up to ``http_timeout`` seconds per
    socket operation.

    Uploads to a class with a hash type (``hashtype=MD5``) carry the MD5
    computed while they stream, for the tracker to check and record. With
    ``verify_checksum`` every upload carries it, and reads of a whole file
    check the bytes against the MD5 the tracker recorded, skipping a copy
    that does not match.

    Copies found damaged (their bytes differ from the recorded MD5) are
    logged once at ERROR and read last from then on, in this process
    (``damaged``).

    A Client is safe to share between threads; each thread uses its own
    tracker connection. It is safe to use across ``fork()``: a child opens
    its own tracker connections and storage-node pool (a ``http`` pool given
    here is copied, with its settings, in the child).
    """

    pool_class = TrackerPool
    trackers: TrackerPool

    def __init__(
        self,
        domain: str,
        trackers: str | Iterable[str],
        *,
        http: urllib3.PoolManager | None = None,
        **settings: Unpack[Settings],
    ) -> None:
        super().__init__(domain, trackers, **settings)
        self.nodes = StorageNodes(
            http if http is not None else urllib3.PoolManager(maxsize=16), **self.node_settings
        )

    @property
    def http(self) -> urllib3.PoolManager:
        """The storage-node connection pool of this process."""
        return self.nodes.http

    # Storing

    def new_file(self, key: str, cls: str | None = None) -> NewFile:
        """A writable binary file stored under ``key`` when closed.

        In a ``with`` block an exception discards it instead.
        """
        key = check_key(key)
        cls = check_class(cls)
        return NewFile(
            lambda spool: self.store_file(key, spool, cls), key=key, spool_size=self.spool_size
        )

    def store_content(self, key: str, data: bytes, cls: str | None = None) -> int:
        """Store ``data`` under ``key``; returns the number of bytes stored."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"store_content needs bytes, got {type(data).__name__}")
        return self.store_file(key, io.BytesIO(data), cls)

    def store_file(self, key: str, fileobj: IO[bytes], cls: str | None = None) -> int:
        """Store a binary file's bytes (from its current position) under ``key``.

        The bytes stream to a storage node chunk by chunk. If a destination
        fails (or stays silent for ``node_progress_timeout``), the next one
        ``create_open`` offered gets the upload (the file is rewound). If
        the destination vanishes before ``create_close`` could check the
        upload, the store starts over from ``create_open``, with that node
        tried last, up to :data:`STORE_ATTEMPTS` times. A non-seekable file
        can only start over if nothing was read from it yet, else
        UnrewindableSourceError. Only a complete upload is committed with
        ``create_close``, so a failed store leaves the key's previous content
        in place, unless a ``create_close`` died midway (mogilefsd deletes
        the old file before it records the new one; its error says so).
        Returns the number of bytes stored.
        """
        return self._run(self._store(key, fileobj, cls))[1]

    def store_new_file(
        self,
        keys: Iterable[str],
        fileobj: IO[bytes],
        cls: str | None = None,
        *,
        staging_key: str,
    ) -> str:
        """Store a file under the first of ``keys`` that is free when it is committed.

        Never replaces a file: the bytes are stored under ``staging_key``
        (a key nobody else uses) and then renamed onto the first of ``keys``
        that the tracker finds free (``rename`` refuses a taken key, which
        makes it MogileFS's one atomic create-if-absent). Concurrent callers
        each get a key of their own. Returns the key used; KeyExistsError
        when every key was taken. The staging key is deleted if anything
        fails; one left by a killed process holds a complete file that
        nothing refers to.

        The keys are not looked up first (each costs a round trip): give
        keys found free a moment ago, as Django's ``get_available_name``
        does, so the rename seldom meets a taken key, which mogilefsd 2.73
        answers twice (see :meth:`rename`).
        """
        return self._run(self._store_new_file(keys, fileobj, cls, staging_key))

    def records_checksums(self, cls: str | None) -> bool:
        """Whether the tracker keeps checksums for files of class ``cls``."""
        return self._run(self._records_checksums(cls))

    def copies_wanted(self, cls: str | None) -> int:
        """How many copies the tracker makes of a file of class ``cls`` (its mindevcount)."""
        return self._run(self._copies_wanted(cls))

    def wait_for_copies(self, key: str, copies: int, timeout: float) -> int:
        """Wait until the tracker counts ``copies`` copies of ``key``; the count reached.

        MogileFS acknowledges a store with one copy and replicates after; a
        node lost meanwhile loses the file. This polls ``file_info`` with
        growing pauses (50 ms doubling, at most 1 s) and raises
        NotDurableError when ``timeout`` seconds pass first (the file stays
        stored).
        """
        return self._run(self._wait_for_copies(key, copies, timeout))

    # Reading

    def get_paths(
        self, key: str, noverify: bool = False, pathcount: int | None = None
    ) -> list[str]:
        """URLs of the stored copies; ``[]`` when the tracker has none to offer."""
        return self._run(self._get_paths(key, noverify, pathcount))

    def locate(self, key: str, noverify: bool = False, pathcount: int | None = None) -> Location:
        """The key's storage-node URLs, and its length, MD5 and fid as the tracker records them.

        Two round trips (``file_info``, ``get_paths``); keep the result to
        read the file later without asking again (the storage's path cache
        does). Copies this process found damaged come last. A file saved
        again between the two (its paths name another fid) is looked up
        once more. UnknownKeyError for a missing key.
        """
        return self._run(self._locate(key, noverify, pathcount))

    def read_file(
        self,
        key: str,
        *,
        offset: int = 0,
        length: int | None = None,
        paths: list[str] | None = None,
        size: int | None = None,
        md5: str | None = None,
        on_damaged: Callable[[str], None] | None = None,
    ) -> NodeReader:
        """A readable stream of the file (or ``length`` bytes from ``offset``).

        Without ``paths`` the tracker is asked where the file is, how long it
        is and its MD5 (:meth:`locate`). Given ``paths``, give its ``size``
        too: a copy of another length (damaged on its node) is then skipped
        for the next one, and the stream never ends early without raising.
        With an ``md5`` (hex), or ``verify_checksum`` and a recorded MD5, a
        read of the whole file is checked (see :class:`~.files.NodeReader`);
        a copy found damaged is logged once at ERROR, read last from then
        on, and passed to ``on_damaged`` (its URL). Copies found damaged
        before are read last. Wrap the result in ``io.BufferedReader`` for
        line reading; close it to release the storage node connection.
        """
        options: ReadOptions = {
            "offset": offset,
            "length": length,
            "paths": paths,
            "size": size,
            "md5": md5,
            "on_damaged": on_damaged,
        }
        return NodeReader(self.nodes, **self._run(self._reader(key, options)))

    def damaged_copies(self, key: str) -> list[str]:
        """The paths of ``key``'s copies whose bytes differ from the MD5 the tracker recorded.

        Every copy the tracker lists is read whole and hashed (a copy of
        another length counts as damaged without being read); each damaged
        one is logged and read last from then on, as a read that finds it
        would. A copy that cannot be read (its node down) is logged at
        WARNING and not listed. ``[]`` for a file without a recorded MD5
        (a class without a hash type): there is nothing to check against.
        """
        info = self.file_info(key)
        if info.md5 is None:
            return []
        damaged = []
        for url in self.get_paths(key, noverify=True, pathcount=max(info.devcount, 1)):
            try:
                intact = self._copy_matches(url, info)
            except StorageNodeError as exc:
                logger.warning("could not check the copy of key %r at %s: %s", key, url, exc)
                continue
            if not intact:
                self._found_damaged(key, url)
                damaged.append(url)
        return damaged

    def _copy_matches(self, url: str, info: FileInfo) -> bool:
        """Whether the copy at ``url`` has the file's length and recorded MD5."""
        body = self.nodes.open(url, 0, None)
        digest, read = hashlib.md5(), 0
        try:
            if body.size is not None and body.size != info.length:
                return False
            while data := body.read(self.chunk_size):
                digest.update(data)
                read += len(data)
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise StorageNodeError(f"read failed at byte {read}: {exc}", url=url) from exc
        finally:
            body.release()
        return read == info.length and digest.hexdigest() == info.md5

    def get_file_data(self, key: str) -> bytes:
        """The whole file as bytes."""
        with self.read_file(key) as stream:
            return stream.readall()

    def stat(self, key: str, paths: list[str] | None = None, size: int | None = None) -> NodeStat:
        """Size and modification time from the first storage node that answers a HEAD.

        ``paths`` and ``size`` as for :meth:`read_file`: a copy of another
        length is skipped.
        """
        return self._run(self._stat(key, paths, size))

    def file_info(self, key: str) -> FileInfo:
        """The tracker's record of the file."""
        return self._run(self._file_info(key))

    # Listing

    def list_keys(
        self, prefix: str | None = None, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        """One page of keys (at most 1000), in the tracker's order; ``[]`` past the end."""
        return self._run(self._list_page(prefix, after, limit))

    def iter_keys(self, prefix: str | None = None, page_size: int = 1000) -> Iterator[str]:
        """Every key starting with exactly ``prefix``, each once, in the tracker's order.

        The tracker's order is its database's: byte order on SQLite and
        PostgreSQL, the column's collation on MariaDB/MySQL. A page that
        makes no progress raises ListingStalledError.
        """
        return Blocking(self.trackers, self.nodes).iterate(self._iter_keys(prefix, page_size))

    def folds_keys(self, key: str, other: str) -> bool:
        """Whether the tracker takes ``key`` and ``other``, two spellings of a
        stored key, for one key (a database collation folding case, accents
        or trailing spaces, like MariaDB's ``utf8mb4_general_ci``).

        Found out once per client: the tracker folds when both name the
        same fid.
        """
        return self._run(self._folds(key, other))

    def spelt_otherwise(self, key: str, fid: int) -> bool:
        """Whether the file ``fid``, which the tracker found for ``key``, is
        stored under another spelling that the tracker takes for ``key``.

        The first time, ``key`` with a trailing space and in swapped case
        tell whether the tracker folds keys (both found as ``fid``); the
        answer is kept for the client once a case could be tried. On a
        folding tracker the stored spellings are listed with ``key`` as the
        prefix (the keys starting with exactly ``key``).
        """
        return self._run(self._spelt_otherwise(key, fid))

    def exact_file_info(self, key: str) -> FileInfo:
        """file_info of exactly ``key``: UnknownKeyError also when the tracker
        finds the file under another spelling (spelt_otherwise)."""
        return self._run(self._exact_file_info(key))

    def require_exact(self, key: str, fid: int, *, command: str = "file_info") -> None:
        """UnknownKeyError (for ``command``) when the file ``fid``, found for
        ``key``, is stored under another spelling: it is not ``key``'s file."""
        self._run(self._require_exact(key, fid, command=command))

    def refuse_other_spelling(self, key: str) -> None:
        """SpellingTakenError when the tracker holds ``key`` under another
        spelling: storing ``key`` would replace that file."""
        self._run(self._refuse_other_spelling(key))

    # Changing

    def delete(self, key: str) -> None:
        """Delete the key; its storage copies are removed by the tracker later."""
        self._run(self._delete(key))

    def rename(self, from_key: str, to_key: str) -> None:
        """Give a file a new key; KeyExistsError if ``to_key`` is taken.

        The target is looked up first: mogilefsd 2.73 answers a rename onto
        a taken key twice, and its stray second reply costs the next request
        of some client its connection (docs/client.md). The file's fid is
        looked up too, to tell after a lost reply where the file is now.

        Only exactly ``from_key`` is renamed: on a tracker whose database
        calls other spellings equal (MariaDB), a ``from_key`` stored only
        under another spelling is UnknownKeyError, and a ``to_key`` held under
        another spelling by another file is KeyExistsError. A ``to_key`` that
        spells ``from_key`` otherwise (``Photo.JPG`` to ``photo.jpg``) changes
        its spelling.
        """
        self._run(self._rename(from_key, to_key))

    def update_class(self, key: str, cls: str) -> None:
        """Move a file to another class (replication follows its mindevcount)."""
        self._run(self._update_class(key, cls))

    def close(self) -> None:
        """Close every thread's tracker connection and the storage-node pool.

        The client stays usable: the next call opens new connections.
        """
        self.trackers.close()
        self.nodes.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, operation: Operation[T]) -> T:
        """Run ``operation`` with this thread's tracker connection and the node pool."""
        return Blocking(self.trackers, self.nodes).run(operation)


class Blocking(Transport):
    """The blocking transport of the operations (:mod:`.operations`): it
    performs their effects with a :class:`~.trackers.TrackerPool` and
    :class:`~.nodes.StorageNodes`."""

    trackers: TrackerPool
    nodes: StorageNodes

    def run(self, operation: Operation[T]) -> T:
        """Perform the effects of ``operation``; its result."""
        stepper = Stepper(operation)
        while (effect := stepper.next()) is not None:
            self._perform(stepper, effect)
        return stepper.result

    def iterate(self, operation: Operation[None]) -> Iterator[str]:
        """Perform the effects of ``operation``, yielding the keys it emits."""
        stepper = Stepper(operation)
        while (effect := stepper.next()) is not None:
            if isinstance(effect, Emit):
                yield effect.key
            else:
                self._perform(stepper, effect)

    def _perform(self, stepper: Stepper[Any], effect: Any) -> None:
        try:
            stepper.answer(effect.via(self))
        except BaseException as exc:  # noqa: BLE001  the operation's, as a call raising it
            stepper.fail(exc)

    def pause(self, seconds: float) -> None:
        time.sleep(seconds)

    def order(self, urls: list[str]) -> list[str]:
        return self.nodes.order(urls)

    def rest(self, url: str) -> None:
        self.nodes.rest(url)

    def head(self, url: str, last: bool) -> NodeStat:
        return self.nodes.head(url, last=last)

    def upload(self, source: UploadSource, url: str, failover: bool) -> None:
        source.send_to(self.nodes, url, failover=failover)

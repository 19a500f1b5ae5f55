"""The MogileFS client: store, read, list and manage the files of one domain.

Method names and arguments follow pymogile and MogileFS::Client, so code
written for those ports over. Tracker requests go through a
:class:`~.trackers.TrackerPool` (failover, retries), file bytes through
:class:`~.nodes.StorageNodes` (urllib3, streamed both ways).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, NamedTuple, NoReturn

import urllib3

from .damaged import DamagedCopies
from .errors import (
    CloseOutcomeUnknownError,
    KeyExistsError,
    ListingStalledError,
    MogileFSError,
    NoPathsError,
    NotDurableError,
    SpellingTakenError,
    StorageNodeError,
    TrackerError,
    UnknownKeyError,
    tracker_error,
)
from .files import InputReadError, NewFile, NodeReader, UploadSource
from .nodes import NodeStat, StorageNodes
from .protocol import ENCODING, ERRORS, ProtocolError, domain_classes, numbered
from .trackers import Settle, TrackerPool

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger(__name__)

# Characters that make a list_keys prefix mean something else as a Perl
# regex, which is how the tracker checks that "after" matches the prefix.
_REGEX_SPECIAL = frozenset("\\^$|?*+()[]{}")

#: create_close refusals that mean the upload is lost but nothing was
#: stored: the tracker could not check it on its node (the node went away
#: after the PUT). The store then starts over from create_open. Not
#: ``no_temp_file`` to a close sent again: the first attempt holds the
#: upload and may still commit it, and a store started over would race it
#: (CloseOutcomeUnknownError).
UPLOAD_LOST = frozenset({"size_verify_error"})

#: How many times one store may run create_open, the upload and create_close.
STORE_ATTEMPTS = 3

# A storage-node path ends in the file's fid, zero-padded to ten digits
# (mogilefsd's and the dev MogileFS's layout).
_PATH_FID = re.compile(r"/(\d+)\.fid\Z")

# How many paths get_paths gives when not asked for more (mogilefsd 2.73).
_DEFAULT_PATHCOUNT = 2


def path_fid(url: str) -> int | None:
    """The fid a storage-node URL holds, ``None`` for a URL of another shape."""
    match = _PATH_FID.search(url)
    return int(match.group(1)) if match else None


class Location(NamedTuple):
    """Where a file is (storage-node URLs), how long the tracker says it is, the
    MD5 (hex) the tracker recorded for it (``None`` when it has none), its fid,
    and whether it is ``complete``: as many paths as once its class's copies
    are made (``False`` right after an upload, before replication)."""

    paths: list[str]
    size: int
    md5: str | None = None
    fid: int | None = None
    complete: bool = True


class _Found(NamedTuple):
    """A location whose size may be unknown (paths given without one)."""

    paths: list[str]
    size: int | None
    md5: str | None = None


@dataclass(frozen=True)
class FileInfo:
    """What the tracker knows about a stored file (``file_info``).

    ``checksum`` is only given for classes with a hash type, as
    ``"MD5:<hex>"`` (or ``"MISSING"`` when none was recorded).
    """

    fid: int
    key: str
    domain: str
    cls: str
    length: int
    devcount: int
    checksum: str | None = None

    @property
    def md5(self) -> str | None:
        """The recorded MD5 as hex, ``None`` when the tracker has none."""
        hashtype, _, digest = (self.checksum or "").partition(":")
        return digest.lower() if hashtype == "MD5" and digest else None


class Client:
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

    spool_size = 8 << 20  # bytes new_file() keeps in memory before spilling to disk
    class_cache_timeout = 60.0  # seconds the classes' hash types and copy counts are kept

    def __init__(
        self,
        domain: str,
        trackers: str | Iterable[str],
        *,
        connect_timeout: float = 3.0,
        timeout: float = 10.0,
        backoff: float = 5.0,
        http: urllib3.PoolManager | None = None,
        http_timeout: float = 30.0,
        node_progress_timeout: float = 5.0,
        chunk_size: int = 1 << 20,
        verify_checksum: bool = False,
    ) -> None:
        for name, seconds in (
            ("connect_timeout", connect_timeout),
            ("timeout", timeout),
            ("http_timeout", http_timeout),
            ("node_progress_timeout", node_progress_timeout),
        ):
            _check_seconds(name, seconds)
        _check_seconds("backoff", backoff, zero=True)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of bytes, got {chunk_size!r}")
        self.domain = _check_name("domain", domain)
        self.trackers = TrackerPool(
            trackers, connect_timeout=connect_timeout, timeout=timeout, backoff=backoff
        )
        self.nodes = StorageNodes(
            http if http is not None else urllib3.PoolManager(maxsize=16),
            connect_timeout=connect_timeout,
            http_timeout=http_timeout,
            progress_timeout=node_progress_timeout,
            backoff=backoff,
        )
        self.chunk_size = chunk_size
        self.verify_checksum = verify_checksum
        self.damaged = DamagedCopies()
        self._classes: tuple[float, dict[str, dict[str, str]]] | None = None
        self._folds_keys: bool | None = None

    @property
    def http(self) -> urllib3.PoolManager:
        """The storage-node connection pool of this process."""
        return self.nodes.http

    def __repr__(self) -> str:
        return f"<Client domain={self.domain!r} trackers={self.trackers.trackers!r}>"

    # Storing

    def new_file(self, key: str, cls: str | None = None) -> NewFile:
        """A writable binary file stored under ``key`` when closed.

        In a ``with`` block an exception discards it instead.
        """
        key = _check_key(key)
        cls = _check_class(cls)
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
        in place. Returns the number of bytes stored.
        """
        return self._store(_check_key(key), fileobj, _check_class(cls))[1]

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
        staging_key = _check_key(staging_key)
        cls = _check_class(cls)
        fid, staging_key = self._stage(staging_key, fileobj, cls)
        try:
            for key in keys:
                try:
                    self._rename_fid(fid, staging_key, _check_key(key))
                except KeyExistsError:
                    logger.debug("key %r was taken first; trying the next", key)
                    continue
                return key
            raise self._refusal("key_exists", "rename", staging_key)
        except BaseException:
            self._discard(staging_key)
            raise

    def _stage(self, staging_key: str, fileobj: IO[bytes], cls: str | None) -> tuple[int, str]:
        """Store the file under ``staging_key``: its fid and the staging key used.

        A create_close whose reply is lost and that, sent again, is refused
        because its first attempt holds the upload (mogilefsd waits for the
        storage node it checks, and may commit later) is not waited for: the
        store starts over under a new staging key, ``<staging_key>.<n>``
        (at most twice); a late commit lands on the abandoned key, where
        nothing refers to it (``mogilefs_audit`` clears it).
        """
        opened = self._create_open(staging_key, cls)
        source = self._source(staging_key, fileobj, cls)
        key = staging_key
        attempt = 1
        while True:
            try:
                return self._store_source(key, source, cls, opened, abandon=True), key
            except CloseOutcomeUnknownError as exc:
                if attempt == STORE_ATTEMPTS:
                    raise
                logger.warning("storing %r starts over under another staging key: %s", key, exc)
                source.restart(str(exc))
            key = f"{staging_key}.{attempt}"
            attempt += 1
            opened = self._create_open(key, cls)

    def _store(self, key: str, fileobj: IO[bytes], cls: str | None) -> tuple[int, int]:
        """create_open, upload, create_close: the stored file's fid and size."""
        opened = self._create_open(key, cls)
        source = self._source(key, fileobj, cls)
        return self._store_source(key, source, cls, opened, abandon=False), source.consumed

    def _source(self, key: str, fileobj: IO[bytes], cls: str | None) -> UploadSource:
        checksum = self.verify_checksum or self.records_checksums(cls)
        return UploadSource(fileobj, self.chunk_size, key=key, checksum=checksum)

    def _store_source(
        self,
        key: str,
        source: UploadSource,
        cls: str | None,
        opened: dict[str, str],
        *,
        abandon: bool,
    ) -> int:
        """Upload ``source`` to a destination ``opened`` offers and commit it as ``key``: the fid.

        Starts over from create_open (see :meth:`store_file`) while
        create_close says the upload was lost (:data:`UPLOAD_LOST`).
        ``abandon``: see :meth:`_close`.
        """
        attempt = 1
        while True:
            try:
                return self._store_once(key, source, opened, abandon=abandon)
            except TrackerError as exc:
                if exc.code not in UPLOAD_LOST or attempt == STORE_ATTEMPTS:
                    raise
                logger.warning("storing key %r starts over: %s", key, exc)
                source.restart(str(exc))
            attempt += 1
            opened = self._create_open(key, cls)

    def _create_open(self, key: str, cls: str | None) -> dict[str, str]:
        """A new fid for ``key`` and its destinations (create_open, several of them)."""
        return self._call("create_open", key=key, **{"class": cls}, multi_dest=1)

    def _store_once(
        self, key: str, source: UploadSource, opened: dict[str, str], *, abandon: bool
    ) -> int:
        """Upload to a destination of ``opened`` and commit it; the fid."""
        fid = int(opened["fid"])
        devid, path = self._upload(source, _destinations(opened))
        close_args: dict[str, str | int | None] = {
            "key": key,
            "fid": fid,
            "devid": devid,
            "path": path,
            "size": source.consumed,
        }
        if source.checksum:
            close_args.update(checksum=f"MD5:{source.md5_hex}", checksumverify=1)
        try:
            self._close(key, fid, close_args, abandon=abandon)
        except TrackerError as exc:
            if exc.code in ("size_verify_error", "no_temp_file"):  # the node went away or hung
                self.nodes.rest(path)
            raise
        logger.debug("stored %d bytes as key %r at %s", source.consumed, key, path)
        return fid

    def records_checksums(self, cls: str | None) -> bool:
        """Whether the tracker keeps checksums for files of class ``cls``."""
        return self._class_field(cls, "hashtype") not in ("", "NONE")

    def copies_wanted(self, cls: str | None) -> int:
        """How many copies the tracker makes of a file of class ``cls`` (its mindevcount)."""
        try:
            return max(1, int(self._class_field(cls, "mindevcount")))
        except ValueError:
            return 1  # a class the tracker does not list: nothing to wait for

    def _class_field(self, cls: str | None, field: str) -> str:
        """A field of the class's ``get_domains`` entry; ``""`` for an unknown class.

        The classes come from ``get_domains``, asked once per
        ``class_cache_timeout`` seconds, and again at once for a class not
        seen before (one created meanwhile).
        """
        name = cls or "default"
        found = self._classes
        if (
            found is None
            or name not in found[1]
            or time.monotonic() - found[0] > self.class_cache_timeout
        ):
            classes = domain_classes(self.trackers.call("get_domains", {})).get(self.domain, {})
            found = self._classes = (time.monotonic(), classes)
        return found[1].get(name, {}).get(field, "")

    def wait_for_copies(self, key: str, copies: int, timeout: float) -> int:
        """Wait until the tracker counts ``copies`` copies of ``key``; the count reached.

        MogileFS acknowledges a store with one copy and replicates after; a
        node lost meanwhile loses the file. This polls ``file_info`` with
        growing pauses (50 ms doubling, at most 1 s) and raises
        NotDurableError when ``timeout`` seconds pass first (the file stays
        stored).
        """
        deadline = time.monotonic() + timeout
        pause = 0.05
        while (found := self.file_info(key).devcount) < copies:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotDurableError(
                    f"key {key!r} is stored with {found} of the {copies} copies asked for "
                    f"after {timeout:g} s; it stays stored and replication may still finish",
                    key=key,
                    copies=found,
                    wanted=copies,
                )
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 1.0)
        return found

    def _discard(self, key: str) -> None:
        """Delete ``key`` if it can be; a failure is logged, never raised."""
        try:
            self.delete(key)
        except MogileFSError as exc:
            logger.warning("could not delete staging key %r: %s", key, exc)

    def _close(
        self, key: str, fid: int, close_args: dict[str, str | int | None], *, abandon: bool
    ) -> None:
        """Commit the upload with create_close.

        A lost reply is settled by asking which fid the key holds now; if
        the close has not taken effect it is sent again. A close sent again
        and refused (``no_temp_file``: the first attempt holds the upload,
        mogilefsd waits for the node it checks) raises
        CloseOutcomeUnknownError: after waiting up to the tracker timeout for
        the first attempt to commit, or with ``abandon`` at once (the caller
        stores elsewhere). A refused create_close has consumed the upload on
        the tracker: the caller must store again from the start.
        """
        try:
            self._call(
                "create_close",
                settle=lambda: self._fid_or_none(key) == fid,
                patient=not abandon,
                **close_args,
            )
        except TrackerError as exc:
            # no_temp_file: the close sent again found the upload taken by the
            # first attempt, which may still commit it.
            lost = exc.code == "no_temp_file"
            outcome = (
                f"the first attempt (fid {fid}) holds the upload and had not committed it "
                f"when asked; it may still do so, and then key {key!r} holds this file: "
                f"check the key before storing it again"
                if lost
                else f"nothing was stored, key {key!r} keeps its previous content (if it had "
                f"any): store the file again"
            )
            error = CloseOutcomeUnknownError if lost else tracker_error
            raise error(
                exc.code,
                f"{exc.message}; {outcome}",
                command=exc.command,
                tracker=exc.tracker,
                key=key,
                domain=self.domain,
            ) from exc

    def _upload(self, source: UploadSource, destinations: list[tuple[str, str]]) -> tuple[str, str]:
        """PUT the source to the first destination that takes it: ``(devid, path)``.

        Destinations on nodes that failed a moment ago go last.
        """
        devids = {path: devid for devid, path in destinations}
        paths = self.nodes.order(devids)
        failures: list[tuple[str, str]] = []
        for index, path in enumerate(paths):
            if failures:
                source.restart(failures[-1][1])
            try:
                source.send_to(self.nodes, path, failover=index < len(paths) - 1)
            except StorageNodeError as exc:
                failures.append((path, str(exc)))
                logger.warning("upload of key %r to %s failed: %s", source.key, path, exc)
                continue
            except InputReadError as exc:
                raise exc.error from None
            return devids[path], path
        tried = "; ".join(reason for _, reason in failures) or "create_open offered none"
        raise StorageNodeError(
            f"upload of key {source.key!r} failed at every destination ({tried}); "
            f"nothing was committed",
            url=failures[-1][0] if failures else "",
        )

    # Reading

    def get_paths(
        self, key: str, noverify: bool = False, pathcount: int | None = None
    ) -> list[str]:
        """URLs of the stored copies; ``[]`` when the tracker has none to offer."""
        reply = self._call(
            "get_paths", key=_check_key(key), noverify=1 if noverify else None, pathcount=pathcount
        )
        return _numbered(reply, "paths", "path{}", "get_paths")

    def locate(self, key: str, noverify: bool = False, pathcount: int | None = None) -> Location:
        """The key's storage-node URLs, and its length, MD5 and fid as the tracker records them.

        Two round trips (``file_info``, ``get_paths``); keep the result to
        read the file later without asking again (the storage's path cache
        does). Copies this process found damaged come last. A file saved
        again between the two (its paths name another fid) is looked up
        once more. UnknownKeyError for a missing key.
        """
        info, paths = self._info_and_paths(key, noverify, pathcount)
        if _fids_differ(paths, info.fid):
            logger.info("key %r changed while it was located; locating it again", key)
            info, paths = self._info_and_paths(key, noverify, pathcount)
            if _fids_differ(paths, info.fid):
                raise NoPathsError(
                    f"key {key!r} changed twice while it was located (fid {info.fid}, paths "
                    f"{paths}); it is being saved again: try again",
                    key=key,
                )
        return Location(
            self.damaged.last(paths),
            info.length,
            info.md5,
            info.fid,
            complete=self._complete(paths, info.cls, pathcount),
        )

    def _complete(self, paths: list[str], cls: str, pathcount: int | None) -> bool:
        """Whether ``paths`` are as many as get_paths gives once the class's copies exist.

        Only a location with fewer paths than get_paths gives at most costs
        a look at the class (``get_domains``, kept ``class_cache_timeout``).
        """
        if len(paths) >= max(pathcount or 0, _DEFAULT_PATHCOUNT):
            return True
        return bool(paths) and len(paths) >= self.copies_wanted(cls)

    def _info_and_paths(
        self, key: str, noverify: bool, pathcount: int | None
    ) -> tuple[FileInfo, list[str]]:
        return self.file_info(key), self.get_paths(key, noverify, pathcount)

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
        key = _check_key(key)
        location = self._located(key, paths, size)
        if md5 is None and paths is None and self.verify_checksum:
            md5 = location.md5

        def damaged(url: str) -> None:
            self._found_damaged(key, url)
            if on_damaged is not None:
                on_damaged(url)

        return NodeReader(
            self.nodes,
            self.damaged.last(location.paths),
            key=key,
            offset=offset,
            length=length,
            size=location.size,
            md5=md5,
            chunk_size=self.chunk_size,
            on_damaged=damaged,
        )

    def _found_damaged(self, key: str, url: str) -> None:
        """Remember a damaged copy; the first time, log it for the operator."""
        if self.damaged.add(url):
            logger.error(
                "damaged copy of key %r (fid %s) in domain %r at %s: its bytes differ from "
                "the MD5 the tracker recorded; it is read last from now on. MogileFS's fsck "
                "replaces it (mogadm fsck start)",
                key,
                path_fid(url),
                self.domain,
                url,
            )

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
        key = _check_key(key)
        paths, size, _ = self._located(key, paths, size)
        paths = self.nodes.order(paths)
        attempts: list[tuple[str, str]] = []
        for index, url in enumerate(paths):
            try:
                found = self.nodes.head(url, last=index == len(paths) - 1)
            except StorageNodeError as exc:
                attempts.append((url, str(exc)))
                logger.warning("HEAD of key %r at %s failed: %s", key, url, exc)
                continue
            if size is None or found.length == size:
                return found
            attempts.append((url, f"holds {found.length} bytes, the file has {size}"))
            logger.warning("key %r at %s holds %d bytes, not %d", key, url, found.length, size)
        tried = "; ".join(reason for _, reason in attempts)
        raise NoPathsError(
            f"no storage node could describe key {key!r} ({tried})", key=key, attempts=attempts
        )

    def _located(self, key: str, paths: list[str] | None, size: int | None) -> _Found:
        """``paths`` and ``size``, else the tracker's location; NoPathsError without paths."""
        if paths is None:
            paths, size, md5, *_ = self.locate(key)
            found, reason = _Found(paths, size, md5), "the tracker returned no paths"
        else:
            found, reason = _Found(paths, size), "no paths were given"
        if not found.paths:
            raise NoPathsError(
                f"key {key!r} in domain {self.domain!r} has no readable copy: {reason}", key=key
            )
        return found

    def file_info(self, key: str) -> FileInfo:
        """The tracker's record of the file."""
        key = _check_key(key)
        reply = self._call("file_info", key=key)
        try:
            return FileInfo(
                fid=int(reply["fid"]),
                key=reply.get("key", key),
                domain=reply.get("domain", self.domain),
                cls=reply["class"],
                length=int(reply["length"]),
                devcount=int(reply["devcount"]),
                checksum=reply.get("checksum"),
            )
        except (KeyError, ValueError) as exc:
            raise MogileFSError(f"file_info for key {key!r}: malformed reply {reply!r}") from exc

    # Listing

    def list_keys(
        self, prefix: str | None = None, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        """One page of keys (at most 1000), in the tracker's order; ``[]`` past the end."""
        return self._list_page(prefix, after, limit)

    def iter_keys(self, prefix: str | None = None, page_size: int = 1000) -> Iterator[str]:
        """Every key starting with exactly ``prefix``, each once, in the tracker's order.

        The tracker's order is its database's: byte order on SQLite and
        PostgreSQL, the column's collation on MariaDB/MySQL. A page that
        makes no progress raises ListingStalledError.
        """
        if not prefix:
            yield from self._pages(None, page_size)
        elif _REGEX_SPECIAL.intersection(prefix):
            yield from self._scan_keys(prefix, page_size)
        else:
            yield from (key for key in self._pages(prefix, page_size) if key.startswith(prefix))

    def _pages(self, prefix: str | None, page_size: int) -> Iterator[str]:
        """The keys of list_keys pages by ``prefix``, as the tracker matches it.

        Each page goes on after the last key of the one before (not after
        the tracker's ``next_after``, which is the page's byte-wise greatest
        key, also where the database orders by a collation). Trackers on
        SQLite and MariaDB match the prefix case-insensitively but refuse an
        ``after`` that does not start with it exactly (``after_mismatch``).
        A page ending on such a key goes on, on a tracker that folds keys
        (MariaDB), after that key spelt with the prefix's letters: the same
        key to it. On a byte-comparing one (SQLite) the keys are in byte
        order, where every key starting with the prefix follows the prefix:
        the listing goes on right before the prefix if that is still ahead,
        and has ended if it is behind.
        """
        keys = self._list_page(prefix, None, page_size)
        previous: str | None = None
        while keys:
            last = keys[-1]
            if last == previous:
                self._stalled(prefix, last)
            yield from keys
            previous = last
            after: str | None = last
            if prefix and not last.startswith(prefix):
                respelt = prefix + last[len(prefix) :]
                if self.folds_keys(respelt, last):
                    after = respelt  # the same key to the tracker
                elif _key_bytes(last) > _key_bytes(prefix):
                    return
                else:
                    if self._fid_or_none(prefix) is not None:
                        yield prefix  # "after" = prefix would skip the key equal to it
                    after = prefix
            keys = self._list_page(prefix, after, page_size)

    def folds_keys(self, key: str, other: str) -> bool:
        """Whether the tracker takes ``key`` and ``other``, two spellings of a
        stored key, for one key (a database collation folding case, accents
        or trailing spaces, like MariaDB's ``utf8mb4_general_ci``).

        Found out once per client: the tracker folds when both name the
        same fid.
        """
        if self._folds_keys is None:
            fid = self._fid_or_none(other)
            self._learn_folding(fid, [key], settled=True)
        return bool(self._folds_keys)

    @property
    def compares_bytes(self) -> bool:
        """Whether the tracker is known to compare keys byte for byte (SQLite,
        PostgreSQL): then no key is spelt otherwise, and nothing is asked."""
        return self._folds_keys is False

    def spelt_otherwise(self, key: str, fid: int) -> bool:
        """Whether the file ``fid``, which the tracker found for ``key``, is
        stored under another spelling that the tracker takes for ``key``.

        The first time, ``key`` with a trailing space and in swapped case
        tell whether the tracker folds keys (both found as ``fid``); the
        answer is kept for the client once a case could be tried. On a
        folding tracker the stored spellings are listed with ``key`` as the
        prefix (the keys starting with exactly ``key``).
        """
        variants = [key + " ", key.swapcase()]
        if self._folds_keys is None and not self._learn_folding(
            fid, variants, settled=variants[1] != key
        ):
            return False
        if self._folds_keys is False:
            return False
        return not any(found == key for found in self.iter_keys(key))

    def _learn_folding(self, fid: int | None, variants: list[str], *, settled: bool) -> bool:
        """Whether one of ``variants`` names the file ``fid`` too; kept if ``settled``."""
        folds = fid is not None and any(
            self._fid_or_none(variant) == fid for variant in variants if variant
        )
        if folds or settled:
            self._folds_keys = folds
            logger.info("the tracker %s keys", "folds" if folds else "compares the bytes of")
        return folds

    def exact_file_info(self, key: str) -> FileInfo:
        """file_info of exactly ``key``: UnknownKeyError also when the tracker
        finds the file under another spelling (spelt_otherwise)."""
        info = self.file_info(key)
        self.require_exact(key, info.fid)
        return info

    def require_exact(self, key: str, fid: int) -> None:
        """UnknownKeyError when the file ``fid``, found for ``key``, is stored
        under another spelling: it is not ``key``'s file."""
        if self.spelt_otherwise(key, fid):
            raise tracker_error(
                "unknown_key",
                f"the tracker holds key {key!r} only under another spelling that its "
                "database calls equal (letter case, accents, trailing spaces)",
                command="file_info",
                key=key,
                domain=self.domain,
            )

    def refuse_other_spelling(self, key: str) -> None:
        """SpellingTakenError when the tracker holds ``key`` under another
        spelling: storing ``key`` would replace that file."""
        if self.compares_bytes:
            return
        fid = self._fid_or_none(key)
        if fid is not None and self.spelt_otherwise(key, fid):
            raise SpellingTakenError(
                f"the tracker holds key {key!r} under another spelling (its database calls "
                "keys that differ in case, accents or trailing spaces equal): storing it "
                "would replace that file. Save under another name (docs/operating.md).",
                key=key,
            )

    def _scan_keys(self, prefix: str, page_size: int) -> Iterator[str]:
        """iter_keys for a prefix the tracker would misread as a regex.

        Only the first page is asked for by prefix; the following ones are
        asked for by ``after`` alone and filtered here, stopping at the first
        key past the prefix's range.
        """
        keys = self._list_page(prefix, None, page_size)
        yield from (key for key in keys if key.startswith(prefix))
        bound = _key_bytes(prefix)
        while keys:
            after = keys[-1]
            keys = self._list_page(None, after, page_size)
            if keys and keys[-1] == after:
                self._stalled(None, after)
            for key in keys:
                if key.startswith(prefix):
                    yield key
                elif _key_bytes(key) > bound:
                    return

    def _stalled(self, prefix: str | None, after: str | None) -> NoReturn:
        """A listing whose next page (by ``prefix``, after ``after``) made no progress."""
        raise ListingStalledError(
            f"list_keys with prefix {prefix!r} after {after!r} answered a page that does not "
            "go past the one before: the listing would never end. The tracker's database "
            "compares keys in a way the client cannot page through (docs/operating.md).",
            prefix=prefix,
            after=after,
        )

    def _list_page(self, prefix: str | None, after: str | None, limit: int | None) -> list[str]:
        """The keys of one list_keys page, in the tracker's order."""
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        try:
            reply = self._call("list_keys", prefix=prefix, after=after, limit=limit)
        except TrackerError as exc:
            if exc.code == "none_match":  # the tracker's way of saying "no more keys"
                return []
            raise
        return _numbered(reply, "key_count", "key_{}", "list_keys")

    # Changing

    def delete(self, key: str) -> None:
        """Delete the key; its storage copies are removed by the tracker later."""
        self._call("delete", key=_check_key(key))

    def rename(self, from_key: str, to_key: str) -> None:
        """Give a file a new key; KeyExistsError if ``to_key`` is taken.

        The target is looked up first: mogilefsd 2.73 answers a rename onto
        a taken key twice, and its stray second reply costs the next request
        of some client its connection (docs/client.md). The file's fid is
        looked up too, to tell after a lost reply where the file is now.
        """
        from_key, to_key = _check_key(from_key), _check_key(to_key)
        fid = self._fid_or_none(from_key)
        if fid is None:
            raise self._refusal("unknown_key", "rename", from_key)
        if from_key == to_key:
            return  # the tracker answers OK and changes nothing
        if self._fid_or_none(to_key) is not None:
            raise self._refusal("key_exists", "rename", to_key)
        self._rename_fid(fid, from_key, to_key)

    def _rename_fid(self, fid: int, from_key: str, to_key: str) -> None:
        """Rename the file ``fid`` (under ``from_key``); a lost reply is settled by the fid."""
        self._call(
            "rename",
            from_key=from_key,
            to_key=to_key,
            settle=lambda: self._renamed(fid, from_key, to_key),
        )

    def _renamed(self, fid: int, from_key: str, to_key: str) -> bool:
        """Whether a rename whose reply was lost moved ``fid`` to ``to_key``.

        The old key is asked first: the lost rename may still be running,
        and it moves the file from one key to the other at once. A target
        holding another file settles it for good: a rename never replaces,
        so KeyExistsError is raised without sending the rename again.
        """
        if self._fid_or_none(from_key) == fid:
            target = self._fid_or_none(to_key)
            if target is not None and target != fid:
                raise self._refusal("key_exists", "rename", to_key)
            return False
        if self._fid_or_none(to_key) == fid:
            return True
        raise MogileFSError(
            f"rename of {from_key!r} to {to_key!r} lost its reply, and the file (fid {fid}) "
            f"is under neither key now: another client renamed or deleted it meanwhile"
        )

    def _fid_or_none(self, key: str) -> int | None:
        """The fid ``key`` holds, ``None`` when the key does not exist."""
        try:
            return self.file_info(key).fid
        except UnknownKeyError:
            return None

    def _refusal(self, code: str, command: str, key: str) -> TrackerError:
        """The error the tracker would answer, found out before asking it."""
        return tracker_error(code, "", command=command, key=key, domain=self.domain)

    def update_class(self, key: str, cls: str) -> None:
        """Move a file to another class (replication follows its mindevcount)."""
        self._call("updateclass", key=_check_key(key), **{"class": _check_name("class", cls)})

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

    def _call(
        self,
        command: str,
        *,
        settle: Settle | None = None,
        patient: bool = True,
        **args: str | int | None,
    ) -> dict[str, str]:
        return self.trackers.call(
            command, {"domain": self.domain, **args}, settle=settle, patient=patient
        )


def _fids_differ(paths: list[str], fid: int) -> bool:
    """Whether a path names another fid than ``fid`` (the key was saved again meanwhile)."""
    return any(found not in (None, fid) for found in map(path_fid, paths))


def _destinations(reply: dict[str, str]) -> list[tuple[str, str]]:
    """``(devid, path)`` pairs of a create_open reply, multi_dest or not."""
    if "dev_count" in reply:
        devids = _numbered(reply, "dev_count", "devid_{}", "create_open")
        paths = _numbered(reply, "dev_count", "path_{}", "create_open")
        return list(zip(devids, paths, strict=True))
    if "devid" in reply and "path" in reply:
        return [(reply["devid"], reply["path"])]
    raise MogileFSError(f"create_open reply names no destination: {reply!r}")


def _numbered(reply: dict[str, str], count: str, item: str, command: str) -> list[str]:
    try:
        return numbered(reply, count, item)
    except ProtocolError as exc:
        raise MogileFSError(f"{command}: malformed tracker reply: {exc}") from exc


def _key_bytes(key: str) -> bytes:
    """A key as the tracker orders it: its bytes."""
    return key.encode(ENCODING, ERRORS)


def _check_seconds(name: str, value: float, *, zero: bool = False) -> None:
    """ValueError unless ``value`` is a finite number of seconds above 0 (or 0 with ``zero``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not zero)
    ):
        least = "0 or more" if zero else "more than 0"
        raise ValueError(f"{name} must be a number of seconds, {least}, got {value!r}")


def _check_name(what: str, value: str) -> str:
    """A domain or class name: a non-empty str."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"MogileFS {what} must be a non-empty str, got {value!r}")
    return value


def _check_class(cls: str | None) -> str | None:
    return None if cls is None else _check_name("class", cls)


def _check_key(key: str) -> str:
    """A key the tracker can store: a non-empty str that encodes to bytes.

    Raw bytes that are not UTF-8 can be given as surrogate escapes
    (``raw.decode("utf-8", "surrogateescape")``).
    """
    if not isinstance(key, str):
        raise TypeError(f"MogileFS keys are str, got {type(key).__name__}: {key!r}")
    if not key:
        raise ValueError("MogileFS keys must not be empty (the tracker would discard the file)")
    try:
        stored = key.encode(ENCODING, ERRORS).decode(ENCODING, ERRORS)
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"key {key!r} cannot be sent: {exc.reason} at index {exc.start}; keys must be "
            f"valid Unicode, with raw non-UTF-8 bytes as surrogate escapes"
        ) from None
    if stored != key:
        # Escaped bytes that form valid UTF-8 would come back as other text.
        raise ValueError(
            f"key {key!r} would be stored as {stored!r}: its surrogate escapes form valid "
            f"UTF-8; give the key as raw.decode('utf-8', 'surrogateescape')"
        )
    return key

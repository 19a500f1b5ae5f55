"""The client's operations, written once and without I/O.

Each operation of a client (storing, locating, renaming, listing...) is a
generator that yields what it needs done and is sent back what came of it,
as the tracker requests of :mod:`.core` are: the blocking
:class:`~.client.Client` and the asyncio :class:`~.aioclient.AsyncClient`
drive the same operations, and so give the same answers and errors. A
failed effect is thrown into the operation, which handles it as a call
raising that error would be. The effects:

* :class:`Call`: send a tracker request (through the client's tracker pool,
  with its failover and retries); answered with the ``OK`` reply's
  arguments. Its ``settle`` is an operation too.
* :class:`~.core.Pause`: wait that many seconds.
* :class:`Order`: the node URLs, wary nodes last (no I/O, but the nodes'
  health belongs to the transport).
* :class:`Rest`: a node failed; try it last until it answers.
* :class:`Head`: HEAD a node URL; answered with its :class:`~.nodes.NodeStat`.
* :class:`Upload`: PUT an :class:`~.files.UploadSource` to a node URL.
* :class:`Emit`: hand a key to the caller of a listing (``iter_keys``).

Each effect is performed through ``effect.via(transport)``: a Call by the
transport's tracker pool (``transport.trackers``), settled with
``transport.run``; the others by the transport's method of their name.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Generic, NamedTuple, NoReturn, TypedDict, TypeVar

from .core import TRANSIENT, Pause
from .damaged import DamagedCopies
from .errors import (
    CloseOutcomeUnknownError,
    KeyExistsError,
    KeyNotUTF8Error,
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
from .files import InputReadError, UploadSource
from .protocol import ENCODING, ERRORS, ProtocolError, domain_classes, numbered
from .trackers import BasePool

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Characters that make a list_keys prefix mean something else as a Perl
# regex, which is how the tracker checks that "after" matches the prefix.
_REGEX_SPECIAL = re.compile(r"[\\^$|?*+()\[\]{}]")

#: create_close refusals that mean the upload is lost but nothing was
#: stored: the tracker could not check it on its node (the node went away
#: after the PUT), or the close died (TRANSIENT, after the tries of
#: :mod:`.core`) having taken the upload, and the key does not hold it.
#: The store then starts over from create_open. Not ``no_temp_file`` to a
#: close sent again after a lost reply: the first attempt holds the upload
#: and may still commit it, and a store started over would race it
#: (CloseOutcomeUnknownError).
UPLOAD_LOST = frozenset({"size_verify_error"}) | TRANSIENT

#: Tracker codes of a failed database statement: ``db`` (create_open),
#: ``failure`` (rename, whose store method dies on anything but a duplicate).
DATABASE_FAILURES = frozenset({"db", "failure"})

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


class Found(NamedTuple):
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


# The effects


@dataclass(frozen=True)
class Call:
    """Send ``command`` with ``args`` to the trackers.

    ``settle`` makes the operation that tells whether the request took
    effect after its reply was lost (see :class:`~.core.TrackerRequest`).
    """

    command: str
    args: Mapping[str, str | int | None]
    settle: Callable[[], Operation[bool]] | None = None
    patient: bool = True

    def via(self, transport: Any) -> Any:
        """``transport.trackers.call(...)``, settling with ``transport.run``."""
        settle = self.settle
        return transport.trackers.call(
            self.command,
            self.args,
            settle=None if settle is None else lambda: transport.run(settle()),
            patient=self.patient,
        )


class NodeEffect:
    """An effect on the storage nodes, performed by the transport's method of
    the effect's name, given its fields (``Head``: ``transport.head(url, last)``)."""

    def via(self, transport: Any) -> Any:
        return getattr(transport, type(self).__name__.lower())(*vars(self).values())


@dataclass(frozen=True)
class Order(NodeEffect):
    """``urls`` with those of wary nodes moved last."""

    urls: list[str]


@dataclass(frozen=True)
class Rest(NodeEffect):
    """The node of ``url`` failed: try it last until it answers."""

    url: str


@dataclass(frozen=True)
class Head(NodeEffect):
    """HEAD ``url``; ``last``: no other copy is left to ask."""

    url: str
    last: bool


@dataclass(frozen=True)
class Upload(NodeEffect):
    """PUT ``source`` to ``url``; ``failover``: another destination is left."""

    source: UploadSource
    url: str
    failover: bool


@dataclass(frozen=True)
class Emit:
    """Hand ``key`` to the caller of a listing."""

    key: str


Effect = Call | Pause | Order | Rest | Head | Upload | Emit
Operation = Generator[Effect, Any, T]


@dataclass
class Stepper(Generic[T]):
    """An operation, stepped by a transport: :meth:`next` gives the next effect
    (``None`` once :attr:`result` is there), after :meth:`answer` or :meth:`fail`
    said what came of the last one."""

    operation: Operation[T]
    _outcome: Any = None
    _error: BaseException | None = None
    result: Any = field(default=None, init=False)

    def next(self) -> Effect | None:
        error, self._error = self._error, None
        try:
            if error is not None:
                return self.operation.throw(error)
            return self.operation.send(self._outcome)
        except StopIteration as done:
            self.result = done.value
            return None
        finally:
            # An error raised on from here would hold this frame, and the
            # frame the error: a cycle keeping the client until the gc runs.
            del error

    def answer(self, outcome: Any) -> None:
        self._outcome = outcome

    def fail(self, error: BaseException) -> None:
        """The last effect raised ``error``: the operation gets it thrown in."""
        self._outcome, self._error = None, error


class Transport:
    """What the blocking and the asyncio transports of the operations share:
    the tracker pool and the storage nodes they perform the effects with."""

    def __init__(self, trackers: Any, nodes: Any) -> None:
        self.trackers = trackers
        self.nodes = nodes


class Settings(TypedDict, total=False):
    """The settings of a client besides its domain and trackers (see
    :class:`~.client.Client`)."""

    connect_timeout: float
    timeout: float
    backoff: float
    http_timeout: float
    node_progress_timeout: float
    chunk_size: int
    verify_checksum: bool


class ReadOptions(TypedDict, total=False):
    """How ``read_file`` reads a key (see :meth:`.Client.read_file`)."""

    offset: int
    length: int | None
    paths: list[str] | None
    size: int | None
    md5: str | None
    on_damaged: Callable[[str], None] | None


class NodeSettings(TypedDict):
    """The settings of a client's storage nodes (``StorageNodes``' arguments)."""

    connect_timeout: float
    http_timeout: float
    progress_timeout: float
    backoff: float


class Operations:
    """What :class:`~.client.Client` and :class:`~.aioclient.AsyncClient` share:
    their settings, what they learn of the tracker (its classes, whether it
    folds keys), the copies found damaged, and the operations on the domain,
    as generators of effects (see the module)."""

    spool_size = 8 << 20  # bytes new_file() keeps in memory before spilling to disk
    class_cache_timeout = 60.0  # seconds the classes' hash types and copy counts are kept
    #: The tracker pool class of the client's transport.
    pool_class: type[BasePool]

    def __init__(
        self,
        domain: str,
        trackers: str | Iterable[str],
        *,
        connect_timeout: float = 3.0,
        timeout: float = 10.0,
        backoff: float = 5.0,
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
            check_seconds(name, seconds)
        check_seconds("backoff", backoff, zero=True)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of bytes, got {chunk_size!r}")
        self.domain = check_name("domain", domain)
        self.trackers = self.pool_class(
            trackers, connect_timeout=connect_timeout, timeout=timeout, backoff=backoff
        )
        #: The settings of the client's storage nodes.
        self.node_settings: NodeSettings = {
            "connect_timeout": connect_timeout,
            "http_timeout": http_timeout,
            "progress_timeout": node_progress_timeout,
            "backoff": backoff,
        }
        self.chunk_size = chunk_size
        self.verify_checksum = verify_checksum
        self.damaged = DamagedCopies()
        self._classes: tuple[float, dict[str, dict[str, str]]] | None = None
        self._folds_keys: bool | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} domain={self.domain!r} trackers={self.trackers.trackers!r}>"

    def _request(
        self,
        command: str,
        *,
        settle: Callable[[], Operation[bool]] | None = None,
        patient: bool = True,
        **args: str | int | None,
    ) -> Call:
        """The Call of ``command`` in the client's domain."""
        return Call(command, {"domain": self.domain, **args}, settle, patient)

    @property
    def compares_bytes(self) -> bool:
        """Whether the tracker is known to compare keys byte for byte (SQLite,
        PostgreSQL): then no key is spelt otherwise, and nothing is asked."""
        return self._folds_keys is False

    # Storing

    def _store(self, key: str, fileobj: IO[bytes], cls: str | None) -> Operation[tuple[int, int]]:
        """create_open, upload, create_close: the stored file's fid and size."""
        key, cls = check_key(key), check_class(cls)
        opened = yield from self._create_open(key, cls)
        source = yield from self._source(key, fileobj, cls)
        fid = yield from self._store_source(key, source, cls, opened, abandon=False)
        return fid, source.consumed

    def _store_new_file(
        self, keys: Iterable[str], fileobj: IO[bytes], cls: str | None, staging_key: str
    ) -> Operation[str]:
        """Store under ``staging_key``, then rename onto the first free key of ``keys``."""
        staging_key, cls = check_key(staging_key), check_class(cls)
        fid, staging_key = yield from self._stage(staging_key, fileobj, cls)
        target: str | None = None
        try:
            for key in keys:
                target = check_key(key)
                try:
                    yield from self._rename_fid(fid, staging_key, target)
                except KeyExistsError:
                    logger.debug("key %r was taken first; trying the next", key)
                    continue
                return key
            raise self._refusal("key_exists", "rename", staging_key)
        except GeneratorExit:
            raise  # closed unfinished (its event loop is gone): nothing can be sent now
        except BaseException as exc:
            yield from self._discard(staging_key)
            if target is not None and not isinstance(exc, Exception):
                # Interrupted (a cancelled task) with the rename sent: it may
                # have taken effect. The target is not deleted: another
                # writer may have replaced the file there since.
                logger.warning(
                    "storing %r was interrupted while renaming it onto %r: that key may "
                    "hold the file (fid %d), which nothing refers to",
                    staging_key,
                    target,
                    fid,
                )
            raise

    def _stage(
        self, staging_key: str, fileobj: IO[bytes], cls: str | None
    ) -> Operation[tuple[int, str]]:
        """Store the file under ``staging_key``: its fid and the staging key used.

        A create_close whose reply is lost and that, sent again, is refused
        because its first attempt holds the upload (mogilefsd waits for the
        storage node it checks, and may commit later) is not waited for: the
        store starts over under a new staging key, ``<staging_key>.<n>``
        (at most twice); a late commit lands on the abandoned key, where
        nothing refers to it (``mogilefs_audit`` clears it).
        """
        opened = yield from self._create_open(staging_key, cls)
        source = yield from self._source(staging_key, fileobj, cls)
        key = staging_key
        attempt = 1
        while True:
            try:
                fid = yield from self._store_source(key, source, cls, opened, abandon=True)
                return fid, key
            except CloseOutcomeUnknownError as exc:
                if attempt == STORE_ATTEMPTS:
                    raise
                logger.warning("storing %r starts over under another staging key: %s", key, exc)
                source.restart(str(exc))
            except (Exception, GeneratorExit):
                raise
            except BaseException:
                # Interrupted (a cancelled task): a create_close under way may
                # still commit, and nothing would ever refer to the key.
                yield from self._discard(key)
                raise
            key = f"{staging_key}.{attempt}"
            attempt += 1
            opened = yield from self._create_open(key, cls)

    def _source(self, key: str, fileobj: IO[bytes], cls: str | None) -> Operation[UploadSource]:
        checksum = self.verify_checksum or (yield from self._records_checksums(cls))
        return UploadSource(fileobj, self.chunk_size, key=key, checksum=checksum)

    def _store_source(
        self,
        key: str,
        source: UploadSource,
        cls: str | None,
        opened: dict[str, str],
        *,
        abandon: bool,
    ) -> Operation[int]:
        """Upload ``source`` to a destination ``opened`` offers and commit it as ``key``: the fid.

        Starts over from create_open (see ``store_file``) while
        create_close says the upload was lost (:data:`UPLOAD_LOST`).
        ``abandon``: see :meth:`_close`.
        """
        attempt = 1
        while True:
            try:
                return (yield from self._store_once(key, source, opened, abandon=abandon))
            except TrackerError as exc:
                if exc.code not in UPLOAD_LOST or attempt == STORE_ATTEMPTS:
                    raise
                logger.warning("storing key %r starts over: %s", key, exc)
                source.restart(str(exc))
            attempt += 1
            opened = yield from self._create_open(key, cls)

    def _create_open(self, key: str, cls: str | None) -> Operation[dict[str, str]]:
        """A new fid for ``key`` and its destinations (create_open, several of them)."""
        try:
            return (yield self._request("create_open", key=key, **{"class": cls}, multi_dest=1))
        except TrackerError as exc:
            self._raise_if_not_utf8(exc, key)
            raise

    def _raise_if_not_utf8(self, exc: TrackerError, key: str) -> None:
        """KeyNotUTF8Error for a database failure on ``key``, a key holding
        bytes that are not UTF-8: the cause, rather than the bare ``db:
        Database error`` of a MariaDB/MySQL in strict mode."""
        if exc.code not in DATABASE_FAILURES or _is_utf8(key):
            return
        raise KeyNotUTF8Error(
            exc.code,
            f"{exc.message}; the tracker's database refused the key, which holds bytes that "
            "are not valid UTF-8 (a MariaDB/MySQL text column stores only UTF-8): nothing "
            "was stored or renamed. Use a UTF-8 key, or let the database store keys as bytes "
            "(docs/operating.md, Databases)",
            command=exc.command,
            tracker=exc.tracker,
            key=key,
            domain=self.domain,
        ) from exc

    def _store_once(
        self, key: str, source: UploadSource, opened: dict[str, str], *, abandon: bool
    ) -> Operation[int]:
        """Upload to a destination of ``opened`` and commit it; the fid."""
        fid = int(opened["fid"])
        devid, path = yield from self._upload(source, _destinations(opened))
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
            yield from self._close(key, fid, close_args, abandon=abandon)
        except TrackerError as exc:
            if exc.code in ("size_verify_error", "no_temp_file"):  # the node went away or hung
                yield Rest(path)
            raise
        logger.debug("stored %d bytes as key %r at %s", source.consumed, key, path)
        return fid

    def _records_checksums(self, cls: str | None) -> Operation[bool]:
        """Whether the tracker keeps checksums for files of class ``cls``."""
        return (yield from self._class_field(cls, "hashtype")) not in ("", "NONE")

    def _copies_wanted(self, cls: str | None) -> Operation[int]:
        """How many copies the tracker makes of a file of class ``cls`` (its mindevcount)."""
        try:
            return max(1, int((yield from self._class_field(cls, "mindevcount"))))
        except ValueError:
            return 1  # a class the tracker does not list: nothing to wait for

    def _class_field(self, cls: str | None, name: str) -> Operation[str]:
        """A field of the class's ``get_domains`` entry; ``""`` for an unknown class.

        The classes come from ``get_domains``, asked once per
        ``class_cache_timeout`` seconds, and again at once for a class not
        seen before (one created meanwhile).
        """
        wanted = cls or "default"
        found = self._classes
        if (
            found is None
            or wanted not in found[1]
            or time.monotonic() - found[0] > self.class_cache_timeout
        ):
            domains = yield Call("get_domains", {})
            classes = domain_classes(domains).get(self.domain, {})
            found = self._classes = (time.monotonic(), classes)
        return found[1].get(wanted, {}).get(name, "")

    def _wait_for_copies(self, key: str, copies: int, timeout: float) -> Operation[int]:
        """Poll file_info until ``key`` has ``copies`` copies; NotDurableError after ``timeout``."""
        deadline = time.monotonic() + timeout
        pause = 0.05
        while (found := (yield from self._file_info(key)).devcount) < copies:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotDurableError(
                    f"key {key!r} is stored with {found} of the {copies} copies asked for "
                    f"after {timeout:g} s; it stays stored and replication may still finish",
                    key=key,
                    copies=found,
                    wanted=copies,
                )
            yield Pause(min(pause, remaining))
            pause = min(pause * 2, 1.0)
        return found

    def _discard(self, key: str) -> Operation[None]:
        """Delete ``key`` if it can be; a failure is logged, never raised."""
        try:
            yield from self._delete(key)
        except UnknownKeyError:
            pass  # nothing was stored under it, or it was renamed
        except MogileFSError as exc:
            logger.warning("could not delete staging key %r: %s", key, exc)

    def _close(
        self, key: str, fid: int, close_args: dict[str, str | int | None], *, abandon: bool
    ) -> Operation[None]:
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
            yield self._request(
                "create_close",
                settle=lambda: self._holds(key, fid),
                patient=not abandon,
                **close_args,
            )
        except TrackerError as exc:
            # no_temp_file: the close sent again found the upload taken by the
            # first attempt, which may still commit it.
            lost = exc.code == "no_temp_file"
            error = CloseOutcomeUnknownError if lost else tracker_error
            raise error(
                exc.code,
                f"{exc.message}; {_close_outcome(exc.code, key, fid)}",
                command=exc.command,
                tracker=exc.tracker,
                key=key,
                domain=self.domain,
            ) from exc

    def _holds(self, key: str, fid: int) -> Operation[bool]:
        """Whether ``key`` holds the file ``fid``."""
        return (yield from self._fid_or_none(key)) == fid

    def _upload(
        self, source: UploadSource, destinations: list[tuple[str, str]]
    ) -> Operation[tuple[str, str]]:
        """PUT the source to the first destination that takes it: ``(devid, path)``.

        Destinations on nodes that failed a moment ago go last.
        """
        devids = {path: devid for devid, path in destinations}
        paths: list[str] = yield Order(list(devids))
        failures: list[tuple[str, str]] = []
        for index, path in enumerate(paths):
            if failures:
                source.restart(failures[-1][1])
            try:
                yield Upload(source, path, failover=index < len(paths) - 1)
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

    def _get_paths(
        self, key: str, noverify: bool = False, pathcount: int | None = None
    ) -> Operation[list[str]]:
        """URLs of the stored copies; ``[]`` when the tracker has none to offer."""
        reply = yield self._request(
            "get_paths", key=check_key(key), noverify=1 if noverify else None, pathcount=pathcount
        )
        return _numbered(reply, "paths", "path{}", "get_paths")

    def _locate(
        self, key: str, noverify: bool = False, pathcount: int | None = None
    ) -> Operation[Location]:
        """The key's paths, length, MD5, fid and completeness, from one version of the file."""
        info, paths = yield from self._info_and_paths(key, noverify, pathcount)
        if _fids_differ(paths, info.fid):
            logger.info("key %r changed while it was located; locating it again", key)
            info, paths = yield from self._info_and_paths(key, noverify, pathcount)
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
            complete=(yield from self._complete(paths, info.cls, pathcount)),
        )

    def _complete(self, paths: list[str], cls: str, pathcount: int | None) -> Operation[bool]:
        """Whether ``paths`` are as many as get_paths gives once the class's copies exist.

        Only a location with fewer paths than get_paths gives at most costs
        a look at the class (``get_domains``, kept ``class_cache_timeout``).
        """
        if len(paths) >= max(pathcount or 0, _DEFAULT_PATHCOUNT):
            return True
        return bool(paths) and len(paths) >= (yield from self._copies_wanted(cls))

    def _info_and_paths(
        self, key: str, noverify: bool, pathcount: int | None
    ) -> Operation[tuple[FileInfo, list[str]]]:
        info = yield from self._file_info(key)
        return info, (yield from self._get_paths(key, noverify, pathcount))

    def _reader(self, key: str, options: ReadOptions) -> Operation[dict[str, Any]]:
        """The arguments of a reader of ``key`` (a NodeReader, an AsyncNodeReader)
        read as ``options`` say: its copies (damaged ones last), size and MD5 to check."""
        key = check_key(key)
        paths, md5 = options.get("paths"), options.get("md5")
        location = yield from self._located(key, paths, options.get("size"))
        if md5 is None and paths is None and self.verify_checksum:
            md5 = location.md5
        return {
            "paths": self.damaged.last(location.paths),
            "key": key,
            "offset": options.get("offset", 0),
            "length": options.get("length"),
            "size": location.size,
            "md5": md5,
            "chunk_size": self.chunk_size,
            "on_damaged": self._damaged_reporter(key, options.get("on_damaged")),
        }

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

    def _damaged_reporter(
        self, key: str, on_damaged: Callable[[str], None] | None
    ) -> Callable[[str], None]:
        """The ``on_damaged`` of a reader of ``key``: the copy is remembered and
        logged (:meth:`_found_damaged`), then passed to ``on_damaged``."""

        def damaged(url: str) -> None:
            self._found_damaged(key, url)
            if on_damaged is not None:
                on_damaged(url)

        return damaged

    def _stat(self, key: str, paths: list[str] | None, size: int | None) -> Operation[Any]:
        """The NodeStat of the first copy that answers a HEAD with the file's length."""
        key = check_key(key)
        paths, size, _ = yield from self._located(key, paths, size)
        paths = yield Order(paths)
        attempts: list[tuple[str, str]] = []
        for index, url in enumerate(paths):
            try:
                found = yield Head(url, last=index == len(paths) - 1)
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

    def _located(self, key: str, paths: list[str] | None, size: int | None) -> Operation[Found]:
        """``paths`` and ``size``, else the tracker's location; NoPathsError without paths."""
        if paths is None:
            paths, size, md5, *_ = yield from self._locate(key)
            found, reason = Found(paths, size, md5), "the tracker returned no paths"
        else:
            found, reason = Found(paths, size), "no paths were given"
        if not found.paths:
            raise NoPathsError(
                f"key {key!r} in domain {self.domain!r} has no readable copy: {reason}", key=key
            )
        return found

    def _file_info(self, key: str) -> Operation[FileInfo]:
        """The tracker's record of the file."""
        key = check_key(key)
        reply = yield self._request("file_info", key=key)
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

    def _iter_keys(self, prefix: str | None, page_size: int) -> Operation[None]:
        """Emit every key starting with exactly ``prefix``, each once."""
        if not prefix:
            yield from self._pages(None, page_size)
            return
        yield from self._pages(
            _regex_free_head(prefix) or None, page_size, first=prefix, wanted=prefix
        )

    def _pages(
        self,
        prefix: str | None,
        page_size: int,
        *,
        first: str | None = None,
        wanted: str | None = None,
    ) -> Operation[None]:
        """Emit the keys of list_keys pages by ``prefix``, as the tracker matches it.

        The first page may be asked for by ``first``, a longer prefix
        starting with ``prefix``: the keys before it are of no interest.
        Only keys starting with ``wanted`` are emitted (see :meth:`_emit`).

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
        keys = yield from self._list_page(first or prefix, None, page_size)
        previous: str | None = None
        while keys:
            last = keys[-1]
            if last == previous:
                self._stalled(prefix, last)
            for key in keys:
                if not (yield from self._emit(key, wanted)):
                    return
            previous = last
            after: str | None = last
            if prefix and not last.startswith(prefix):
                respelt = prefix + last[len(prefix) :]
                if (yield from self._folds(respelt, last)):
                    after = respelt  # the same key to the tracker
                elif _key_bytes(last) > _key_bytes(prefix):
                    return
                else:
                    # "after" = prefix would skip the key equal to it: emit it first
                    held = yield from self._fid_or_none(prefix)
                    if held is not None and not (yield from self._emit(prefix, wanted)):
                        return
                    after = prefix
            keys = yield from self._list_page(prefix, after, page_size)

    def _emit(self, key: str, wanted: str | None) -> Operation[bool]:
        """Emit ``key`` if it starts with ``wanted``; whether the listing goes on
        (not past ``wanted``'s keys on a tracker comparing bytes)."""
        if wanted is None or key.startswith(wanted):
            yield Emit(key)
            return True
        return not (self.compares_bytes and _key_bytes(key) > _key_bytes(wanted))

    def _folds(self, key: str, other: str) -> Operation[bool]:
        """Whether the tracker takes ``key`` and ``other``, two spellings of a
        stored key, for one key (found out once per client)."""
        if self._folds_keys is None:
            fid = yield from self._fid_or_none(other)
            yield from self._learn_folding(fid, [key], settled=True)
        return bool(self._folds_keys)

    def _spelt_otherwise(self, key: str, fid: int) -> Operation[bool]:
        """Whether the file ``fid``, found for ``key``, is stored under another spelling."""
        variants = [key + " ", key.swapcase()]
        if self._folds_keys is None and not (
            yield from self._learn_folding(fid, variants, settled=variants[1] != key)
        ):
            return False
        if self._folds_keys is False:
            return False
        return not (yield from self._lists(key))

    def _lists(self, key: str) -> Operation[bool]:
        """Whether the keys starting with exactly ``key`` include ``key``; the
        listing stops at it."""
        listing = Stepper(self._iter_keys(key, 1000))
        while (effect := listing.next()) is not None:
            if isinstance(effect, Emit):
                if effect.key == key:
                    return True
                continue
            try:
                listing.answer((yield effect))
            except Exception as exc:  # noqa: BLE001  the listing's to handle, as raised there
                listing.fail(exc)
        return False

    def _learn_folding(
        self, fid: int | None, variants: list[str], *, settled: bool
    ) -> Operation[bool]:
        """Whether one of ``variants`` names the file ``fid`` too; kept if ``settled``."""
        folds = False
        if fid is not None:
            for variant in variants:
                if variant and (yield from self._fid_or_none(variant)) == fid:
                    folds = True
                    break
        if folds or settled:
            self._folds_keys = folds
            logger.info("the tracker %s keys", "folds" if folds else "compares the bytes of")
        return folds

    def _exact_file_info(self, key: str) -> Operation[FileInfo]:
        """file_info of exactly ``key`` (UnknownKeyError for another spelling)."""
        info = yield from self._file_info(key)
        yield from self._require_exact(key, info.fid)
        return info

    def _require_exact(self, key: str, fid: int, *, command: str = "file_info") -> Operation[None]:
        """UnknownKeyError (for ``command``) when ``fid`` is stored under another spelling."""
        if (yield from self._spelt_otherwise(key, fid)):
            raise tracker_error(
                "unknown_key",
                f"the tracker holds key {key!r} only under another spelling that its "
                "database calls equal (letter case, accents, trailing spaces)",
                command=command,
                key=key,
                domain=self.domain,
            )

    def _refuse_other_spelling(self, key: str) -> Operation[None]:
        """SpellingTakenError when the tracker holds ``key`` under another spelling."""
        if self.compares_bytes:
            return
        fid = yield from self._fid_or_none(key)
        if fid is not None and (yield from self._spelt_otherwise(key, fid)):
            raise SpellingTakenError(
                f"the tracker holds key {key!r} under another spelling (its database calls "
                "keys that differ in case, accents or trailing spaces equal): storing it "
                "would replace that file. Save under another name (docs/operating.md).",
                key=key,
            )

    def _stalled(self, prefix: str | None, after: str | None) -> NoReturn:
        """A listing whose next page (by ``prefix``, after ``after``) made no progress."""
        raise ListingStalledError(
            f"list_keys with prefix {prefix!r} after {after!r} answered a page that does not "
            "go past the one before: the listing would never end. The tracker's database "
            "compares keys in a way the client cannot page through (docs/operating.md).",
            prefix=prefix,
            after=after,
        )

    def _list_page(
        self, prefix: str | None, after: str | None, limit: int | None
    ) -> Operation[list[str]]:
        """The keys of one list_keys page, in the tracker's order."""
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        try:
            reply = yield self._request("list_keys", prefix=prefix, after=after, limit=limit)
        except TrackerError as exc:
            if exc.code == "none_match":  # the tracker's way of saying "no more keys"
                return []
            raise
        return _numbered(reply, "key_count", "key_{}", "list_keys")

    # Changing

    def _delete(self, key: str) -> Operation[None]:
        """Delete the key."""
        yield self._request("delete", key=check_key(key))

    def _rename(self, from_key: str, to_key: str) -> Operation[None]:
        """Rename exactly ``from_key`` to ``to_key``, never onto another file."""
        from_key, to_key = check_key(from_key), check_key(to_key)
        fid = yield from self._fid_or_none(from_key)
        if fid is None:
            raise self._refusal("unknown_key", "rename", from_key)
        yield from self._require_exact(from_key, fid, command="rename")
        if from_key == to_key:
            return  # the tracker answers OK and changes nothing
        # The same fid: to_key is another spelling of from_key, which the
        # tracker's database calls equal; the rename changes the spelling.
        if (yield from self._fid_or_none(to_key)) not in (None, fid):
            raise self._refusal("key_exists", "rename", to_key)
        yield from self._rename_fid(fid, from_key, to_key)

    def _rename_fid(self, fid: int, from_key: str, to_key: str) -> Operation[None]:
        """Rename the file ``fid`` (under ``from_key``); a lost reply is settled by the fid."""
        try:
            yield self._request(
                "rename",
                from_key=from_key,
                to_key=to_key,
                settle=lambda: self._renamed(fid, from_key, to_key),
            )
        except TrackerError as exc:
            self._raise_if_not_utf8(exc, to_key)
            raise

    def _renamed(self, fid: int, from_key: str, to_key: str) -> Operation[bool]:
        """Whether a rename whose reply was lost moved ``fid`` to ``to_key``.

        The old key is asked first: the lost rename may still be running,
        and it moves the file from one key to the other at once. A target
        holding another file settles it for good: a rename never replaces,
        so KeyExistsError is raised without sending the rename again.
        """
        if (yield from self._fid_or_none(from_key)) == fid:
            target = yield from self._fid_or_none(to_key)
            if target is not None and target != fid:
                raise self._refusal("key_exists", "rename", to_key)
            return False
        if (yield from self._fid_or_none(to_key)) == fid:
            return True
        raise MogileFSError(
            f"rename of {from_key!r} to {to_key!r} lost its reply, and the file (fid {fid}) "
            f"is under neither key now: another client renamed or deleted it meanwhile"
        )

    def _fid_or_none(self, key: str) -> Operation[int | None]:
        """The fid ``key`` holds, ``None`` when the key does not exist."""
        try:
            return (yield from self._file_info(key)).fid
        except UnknownKeyError:
            return None

    def _refusal(self, code: str, command: str, key: str) -> TrackerError:
        """The error the tracker would answer, found out before asking it."""
        return tracker_error(code, "", command=command, key=key, domain=self.domain)

    def _update_class(self, key: str, cls: str) -> Operation[None]:
        """Move a file to another class."""
        yield self._request(
            "updateclass", key=check_key(key), **{"class": check_name("class", cls)}
        )


def _fids_differ(paths: list[str], fid: int) -> bool:
    """Whether a path names another fid than ``fid`` (the key was saved again meanwhile)."""
    return any(found not in (None, fid) for found in map(path_fid, paths))


def _close_outcome(code: str, key: str, fid: int) -> str:
    """What a create_close refused with ``code`` left under ``key``, for its error."""
    if code == "no_temp_file":
        return (
            f"the first attempt (fid {fid}) holds the upload and had not committed it "
            f"when asked; it may still do so, and then key {key!r} holds this file: "
            f"check the key before storing it again"
        )
    if code in TRANSIENT:
        # mogilefsd deletes the key's old file before it records the new one,
        # with no transaction: a close that died in between left neither.
        return (
            f"this file was not stored, and key {key!r} may have lost its previous "
            f"content (mogilefsd deletes the old file before it records the new one, and "
            f"the close died): check the key, and store the file again"
        )
    return (
        f"nothing was stored, key {key!r} keeps its previous content (if it had any): "
        f"store the file again"
    )


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


def _regex_free_head(prefix: str) -> str:
    """The part of ``prefix`` before its first regex character: a prefix the
    tracker's check of ``after`` reads as the text it is."""
    return _REGEX_SPECIAL.split(prefix, maxsplit=1)[0]


def _is_utf8(key: str) -> bool:
    """Whether ``key`` is text, holding no raw (surrogate-escaped) bytes."""
    try:
        key.encode(ENCODING)
    except UnicodeEncodeError:
        return False
    return True


def check_seconds(name: str, value: float, *, zero: bool = False) -> None:
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


def check_name(what: str, value: str) -> str:
    """A domain or class name: a non-empty str."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"MogileFS {what} must be a non-empty str, got {value!r}")
    return value


def check_class(cls: str | None) -> str | None:
    return None if cls is None else check_name("class", cls)


def check_key(key: str) -> str:
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

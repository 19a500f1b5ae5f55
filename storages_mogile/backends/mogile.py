"""Django storage backend for MogileFS.

``MogileFSStorage`` keeps Django's ``FileField`` data in a MogileFS domain.
Names map to keys (``key_prefix + name``); a save streams the content to a
storage node and registers it with a tracker in one step, replacing any
previous version of the key atomically; reads stream from the first storage
node that answers, falling through to the replicas.

Settings follow django-storages: every option is an ``OPTIONS`` key of the
``STORAGES`` entry, with a project-wide default from a ``MOGILEFS_*`` setting.
"""

from __future__ import annotations

import io
import logging
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from tempfile import SpooledTemporaryFile
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode, urljoin

from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation
from django.core.files.base import File
from django.core.files.utils import validate_file_name
from django.core.signals import setting_changed
from django.core.signing import Signer
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.deconstruct import deconstructible
from django.utils.encoding import filepath_to_uri
from django.utils.module_loading import import_string
from storages.base import BaseStorage
from storages.utils import (
    clean_name,
    get_available_overwrite_name,
    is_seekable,
    setting,
)

from storages_mogile.backends.redirect import active_redirection, redirection_changed
from storages_mogile.client import Client, Location, NodeReader
from storages_mogile.client.errors import NoPathsError, NotDurableError, UnknownKeyError
from storages_mogile.client.nodes import NodeStat
from storages_mogile.client.protocol import ENCODING, ERRORS
from storages_mogile.client.trackers import parse_trackers
from storages_mogile.digits import parse_digits
from storages_mogile.pathcache import PathCache

if TYPE_CHECKING:
    from typing_extensions import Self

    from storages_mogile.client.aioclient import AsyncClient
    from storages_mogile.client.aionodes import AsyncNodeReader

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A real tracker on MySQL or PostgreSQL stores keys in a 255-byte column.
MAX_KEY_BYTES = 255

#: The directory (under the storage's key_prefix) where a save without
#: overwrite stages its upload before renaming it onto a free name. Names in
#: it are refused and listdir() leaves it out; a key left there by a killed
#: process is named ``<unix time>-<random>`` so that it can be found by age.
STAGING_DIR = ".storages-mogile-staging"

#: The directory (at the root of the domain) where ``mogilefs_audit`` moves
#: orphans: ``<unix time>/<original key>``, kept until ``mogilefs_quarantine
#: purge``. Names in it are refused and listdir() leaves it out.
QUARANTINE_DIR = ".storages-mogile-quarantine"

# The directories of a key space that are no one's files.
_RESERVED_DIRS = frozenset({STAGING_DIR, QUARANTINE_DIR})

#: What a save does when ``min_copies`` is not reached in ``min_copies_timeout``.
DURABILITY_ACTIONS = ("raise", "log")

#: A signed URL's ``expires`` is a Unix time of at most this many ASCII digits.
EXPIRES_DIGITS = 12

# Django passes max_length to save() but not to _save(), where a name taken
# meanwhile needs an alternative of the same limit.
_max_length: ContextVar[int | None] = ContextVar("_max_length", default=None)
# Set while get_available_name looks for a free name: there a name is taken
# when the tracker finds a file for it under any spelling it takes for it.
_any_spelling: ContextVar[bool] = ContextVar("_any_spelling", default=False)

# Settings that change what a storage resolves its options to.
_WATCHED_SETTINGS = frozenset({"MEDIA_URL", "STORAGES", "FILE_UPLOAD_TEMP_DIR"})


def _seconds(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _name(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


_SECONDS = (_seconds, "a number of seconds above 0 (an int or a float, not a str)")
_FLAG = (lambda value: isinstance(value, bool), "True or False")

#: How each option is checked at configuration, and the form it takes
#: (``trackers`` is parsed further; ``url_expire`` is checked with the
#: signing of URLs).
OPTION_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "domain": (_optional(_name), "a domain name (a non-empty str)"),
    "trackers": (
        lambda value: (
            isinstance(value, str)
            or (isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value))
        ),
        "a list of 'host:port' strs, or one comma-separated str",
    ),
    "mogile_class": (_optional(_name), "a MogileFS class name (a non-empty str), or None"),
    "base_url": (_optional(lambda value: isinstance(value, str)), "a URL (a str), or None"),
    "key_prefix": (lambda value: isinstance(value, str), "a str (may be empty)"),
    "file_overwrite": _FLAG,
    "connect_timeout": _SECONDS,
    "timeout": _SECONDS,
    "http_timeout": _SECONDS,
    "node_progress_timeout": _SECONDS,
    "noverify": _FLAG,
    "pathcount": (_optional(_count), "a number of paths of at least 1 (an int), or None"),
    "verify_checksum": _FLAG,
    "chunk_size": (_count, "a number of bytes of at least 1 (an int)"),
    "max_memory_size": (_count, "a number of bytes of at least 1 (an int)"),
    "path_cache": (_optional(_name), "the alias of a CACHES entry (a str), or None"),
    "path_cache_timeout": _SECONDS,
    "min_copies": (_optional(_count), "a number of copies of at least 1 (an int), or None"),
    "min_copies_timeout": _SECONDS,
    "min_copies_action": (
        lambda value: value in DURABILITY_ACTIONS,
        " or ".join(map(repr, DURABILITY_ACTIONS)),
    ),
    "signed_urls": _FLAG,
    "storages_alias": (_optional(_name), "the alias of a STORAGES entry (a str), or None"),
}

_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()


def shared_client(domain: str, trackers: tuple[str, ...], **options: Any) -> Client:
    """The one Client for these trackers, domain and options, made on first use.

    Storages with the same configuration share it, and so its tracker
    connections (one per thread) and its storage-node connection pool.
    """
    return _shared(Client, domain, trackers, options)


def shared_async_client(domain: str, trackers: tuple[str, ...], **options: Any) -> AsyncClient:
    """The one AsyncClient for these trackers, domain and options, made on first use.

    It keeps connections per event loop (docs/client.md), so one serves
    every loop of the process.
    """
    from storages_mogile.client.aioclient import AsyncClient  # aiohttp: the "async" extra

    return _shared(AsyncClient, domain, trackers, options)


async def aclose_clients() -> None:
    """Close the running event loop's connections of every shared AsyncClient.

    For an event loop that ends before the process (a test's, a worker's):
    connections are kept per loop, and a loop's cannot be closed from another.
    """
    with _clients_lock:
        clients = [client for (cls, *_), client in _clients.items() if cls is not Client]
    for client in clients:
        await client.aclose()


def _shared(cls: type[T], domain: str, trackers: tuple[str, ...], options: dict[str, Any]) -> T:
    key = (cls, domain, trackers, tuple(sorted(options.items())))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = cls(domain, list(trackers), **options)  # type: ignore[call-arg]
        return client


class MogileFSFile(File):
    """A file in MogileFS, opened by ``MogileFSStorage.open()``.

    In read mode it streams through the client's ``NodeReader`` (which seeks
    by ranged reads and falls through to the replicas). In write mode it
    spools to a ``SpooledTemporaryFile`` bounded by the storage's
    ``max_memory_size`` and stores the content when closed; the key's
    previous version stays readable until then, and stays stored when a
    ``with`` block around the writes ends in an exception.
    """

    def __init__(self, name: str, mode: str, storage: MogileFSStorage) -> None:
        self._storage = storage
        self._key = storage.key_for(name)
        super().__init__(self._open_stream(mode), name)
        self.mode = mode  # File.__init__ copied the spool's "w+b"

    def _open_stream(self, mode: str) -> IO[Any]:
        """A new stream of the key in ``mode``: a node reader, or a spool to write into."""
        if mode.strip("bt") not in ("r", "w"):
            raise ValueError(
                f"MogileFS files open in mode 'rb', 'r', 'wb' or 'w', not {mode!r}: "
                "MogileFS cannot append to or update a stored file in place."
            )
        self._dirty = False
        self._raw: NodeReader | None = None
        if "w" in mode:
            return self._storage._spool()
        self._raw = self._storage._reader(self._key)
        stream = io.BufferedReader(self._raw, buffer_size=self._storage.chunk_size)
        return stream if "b" in mode else io.TextIOWrapper(stream, encoding="utf-8")

    def open(self, mode: str | None = None) -> MogileFSFile:
        """Rewind the file, or open it again from MogileFS once closed.

        Django's ``File.open()`` would reopen a closed file from a local
        path of the same name, which is not where this file lives.
        """
        if not self.closed:
            self.seek(0)
            return self
        mode = mode or self.mode
        self.file = self._open_stream(mode)
        self.mode = mode
        return self

    @property
    def size(self) -> int:
        if self._raw is None:
            return super().size
        if self._raw.size is None:  # the node sent no length: ask the tracker
            return self._storage.size(self.name)
        return self._raw.size

    def write(self, content: Any) -> int:
        if "w" not in self.mode:
            raise OSError(f"{self.name!r} was opened read-only (mode {self.mode!r})")
        if isinstance(content, str):
            if "b" in self.mode:
                raise TypeError(f"{self.name!r} was opened in binary mode: write bytes, not str")
            # Text mode writes UTF-8 into the spool (a TextIOWrapper would
            # need SpooledTemporaryFile.readable(), missing before 3.11).
            content = content.encode("utf-8")
        self._dirty = True
        return self.file.write(content)

    def close(self) -> None:
        if self._dirty and not self.closed:
            self.file.seek(0)
            self._storage._store(self._key, self.file)
            self._dirty = False
        super().close()

    def __exit__(self, exc_type: object, exc_value: object, traceback: object) -> None:
        if exc_type is not None:
            self._dirty = False  # what the failed block wrote is not stored
        self.close()


class AsyncMogileFSFile:
    """A file in MogileFS opened for reading by ``MogileFSStorage.aopen()``.

    ``async for chunk in file`` gives the content in ``chunk_size`` pieces
    (``file.chunks(size)`` in pieces of another size); ``await
    file.read(n)`` up to ``n`` bytes, all with no argument; ``await
    file.aclose()``, or the end of an ``async with`` block, gives the
    storage node's connection back. Reads fall through to the replicas as
    the sync file's do.
    """

    mode = "rb"

    def __init__(self, name: str, reader: AsyncNodeReader) -> None:
        self.name = name
        self._reader = reader

    @property
    def size(self) -> int | None:
        """The file's length, as the tracker recorded it."""
        return self._reader.size

    @property
    def closed(self) -> bool:
        return self._reader.closed

    async def read(self, size: int = -1) -> bytes:
        return await self._reader.read(size)

    async def chunks(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """The rest of the content in pieces of ``chunk_size`` bytes (the last may be shorter)."""
        size = chunk_size or self._reader.chunk_size
        while chunk := await self._reader.read(size):
            yield chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks()

    async def aclose(self) -> None:
        await self._reader.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<AsyncMogileFSFile: {self.name}>"


@deconstructible(path="storages_mogile.backends.mogile.MogileFSStorage")
class MogileFSStorage(BaseStorage):
    """Django storage whose files are MogileFS keys in one domain.

    Options resolve, highest first, from: the keyword arguments (the
    ``OPTIONS`` of a ``STORAGES`` entry), the ``OPTIONS`` of the ``STORAGES``
    alias named by ``storages_alias``, the ``MOGILEFS_*`` settings, and the
    built-in defaults. They are resolved again whenever a setting they
    depend on changes (``override_settings`` in tests), so a storage built
    at import time, as model fields build them, follows the settings; and
    when a redirection (``storages_mogile.backends.redirect``, the pytest
    plugin's) starts or ends, which puts every storage on the test's cluster.
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._configure()
        setting_changed.connect(self._on_setting_changed)
        redirection_changed.connect(self._on_redirection_changed)

    def get_default_settings(self) -> dict[str, Any]:
        defaults = {
            "domain": setting("MOGILEFS_DOMAIN"),
            "trackers": setting("MOGILEFS_TRACKERS", []),
            "mogile_class": setting("MOGILEFS_CLASS"),
            "base_url": setting("MOGILEFS_MEDIA_URL", setting("MEDIA_URL")),
            "key_prefix": setting("MOGILEFS_KEY_PREFIX", ""),
            "file_overwrite": setting("MOGILEFS_FILE_OVERWRITE", False),
            "connect_timeout": setting("MOGILEFS_CONNECT_TIMEOUT", 3.0),
            "timeout": setting("MOGILEFS_TIMEOUT", 10.0),
            "http_timeout": setting("MOGILEFS_HTTP_TIMEOUT", 30.0),
            "node_progress_timeout": setting("MOGILEFS_NODE_PROGRESS_TIMEOUT", 5.0),
            "noverify": setting("MOGILEFS_NOVERIFY", True),
            "pathcount": setting("MOGILEFS_PATHCOUNT"),
            "verify_checksum": setting("MOGILEFS_VERIFY_CHECKSUM", False),
            "chunk_size": setting("MOGILEFS_CHUNK_SIZE", 1024 * 1024),
            "max_memory_size": setting("MOGILEFS_MAX_MEMORY_SIZE", 8 * 1024 * 1024),
            "path_cache": setting("MOGILEFS_PATH_CACHE"),
            "path_cache_timeout": setting("MOGILEFS_PATH_CACHE_TIMEOUT", 300),
            "min_copies": setting("MOGILEFS_MIN_COPIES"),
            "min_copies_timeout": setting("MOGILEFS_MIN_COPIES_TIMEOUT", 30.0),
            "min_copies_action": setting("MOGILEFS_MIN_COPIES_ACTION", "raise"),
            "signed_urls": setting("MOGILEFS_SIGNED_URLS", False),
            "url_expire": setting("MOGILEFS_URL_EXPIRE", 3600),
            "storages_alias": None,
        }
        alias = self._options.get("storages_alias") or self._sole_mogilefs_alias()
        alias_options = self._alias_options(alias)
        self._check_names(alias_options, defaults, f"STORAGES[{alias!r}]['OPTIONS']")
        defaults.update(alias_options)
        return defaults

    @staticmethod
    def _alias_options(alias: str | None) -> dict[str, Any]:
        """The OPTIONS of the STORAGES entry ``alias`` (nothing for no alias)."""
        if alias is None:
            return {}
        storages = getattr(django_settings, "STORAGES", {})
        if alias not in storages:
            raise ImproperlyConfigured(
                f"MogileFSStorage: storages_alias {alias!r} is not a key of settings.STORAGES "
                f"(defined: {', '.join(sorted(storages)) or 'none'})."
            )
        return dict(storages[alias].get("OPTIONS", {}))

    @staticmethod
    def _sole_mogilefs_alias() -> str | None:
        """The STORAGES entry every MogileFS storage takes its options from by default.

        With one MogileFS entry in STORAGES, its OPTIONS reach every
        MogileFSStorage of the project (``mogile_storage(klass=...)`` fields
        included); with several, a storage names its own (``alias=``).
        """
        aliases = mogilefs_aliases()
        return aliases[0] if len(aliases) == 1 else None

    @staticmethod
    def _check_names(options: dict[str, Any], known: dict[str, Any], where: str) -> None:
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ImproperlyConfigured(
                f"Unknown MogileFSStorage option(s) {', '.join(map(repr, unknown))} in {where}. "
                f"Valid options: {', '.join(sorted(known))}."
            )

    def _configure(self) -> None:
        """(Re)resolve every option from the arguments, settings and defaults."""
        defaults = self.get_default_settings()
        self._check_names(self._options, defaults, "the storage's OPTIONS")
        for name in defaults:
            self.__dict__.pop(name, None)
        super().__init__(**self._options)
        redirection = active_redirection()
        if redirection is not None:
            redirection.apply(self)
        self._check_options()
        self._trackers = self._parse_trackers()
        self._check_url_expire()
        self._path_cache = PathCache(self.path_cache, self.path_cache_timeout, self.domain)

    def _check_options(self) -> None:
        """ImproperlyConfigured for the first option whose value has the wrong form."""
        for name, (valid, form) in OPTION_CHECKS.items():
            value = getattr(self, name)
            if not valid(value):
                raise ImproperlyConfigured(
                    f"MogileFSStorage option {name!r} must be {form}, not {value!r} (from the "
                    f"storage's OPTIONS, or else its MOGILEFS_* setting)."
                )

    def _check_url_expire(self) -> None:
        try:
            _check_link_lifetime(
                self.url_expire, "MogileFSStorage 'url_expire' (MOGILEFS_URL_EXPIRE)"
            )
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(str(exc)) from None

    def _parse_trackers(self) -> tuple[str, ...]:
        """The trackers option as ``host:port`` strings (none when unset)."""
        if not self.trackers:
            return ()
        try:
            return tuple(parse_trackers(self.trackers))
        except ValueError as exc:
            raise ImproperlyConfigured(f"MogileFSStorage 'trackers' option: {exc}") from exc

    def _on_setting_changed(self, *, setting: str, **kwargs: Any) -> None:
        if setting.startswith("MOGILEFS_") or setting in _WATCHED_SETTINGS:
            self._configure()

    def _on_redirection_changed(self, **kwargs: Any) -> None:
        self._configure()

    def __getstate__(self) -> dict[str, Any]:
        # Clients hold sockets and locks: a copy keeps only what it was made
        # from, resolves its options again and finds its own shared client.
        return {"_options": self._options, "_constructor_args": self._constructor_args}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._constructor_args = state["_constructor_args"]
        self.__init__(**state["_options"])  # type: ignore[misc]

    @property
    def client(self) -> Client:
        """The shared MogileFS client for this storage's trackers and domain."""
        return shared_client(self.domain, self._trackers, **self._client_options())

    @property
    def aclient(self) -> AsyncClient:
        """The shared asyncio MogileFS client for this storage's trackers and domain."""
        return shared_async_client(self.domain, self._trackers, **self._client_options())

    async def aclose(self) -> None:
        """Close the running event loop's connections of this storage's AsyncClient
        (shared with storages of the same configuration), before the loop ends."""
        await self.aclient.aclose()

    def _client_options(self) -> dict[str, Any]:
        """The client's options; ImproperlyConfigured without a domain or trackers."""
        if not self.domain:
            raise ImproperlyConfigured(
                "MogileFSStorage has no domain: set MOGILEFS_DOMAIN or the 'domain' OPTION"
                + self._which_entry_hint()
            )
        if not self._trackers:
            raise ImproperlyConfigured(
                "MogileFSStorage has no trackers: set MOGILEFS_TRACKERS or the 'trackers' "
                "OPTION to a list of 'host:port' strings" + self._which_entry_hint()
            )
        return {
            "connect_timeout": self.connect_timeout,
            "timeout": self.timeout,
            "http_timeout": self.http_timeout,
            "node_progress_timeout": self.node_progress_timeout,
            "chunk_size": self.chunk_size,
            "verify_checksum": self.verify_checksum,
        }

    def _which_entry_hint(self) -> str:
        """How to point this storage at a STORAGES entry, when there is a choice."""
        aliases = mogilefs_aliases()
        if self._options.get("storages_alias") or len(aliases) < 2:
            return "."
        return (
            f"; STORAGES has several MogileFS entries ({', '.join(aliases)}): name the one "
            "this storage uses, mogile_storage(klass=..., alias='...')."
        )

    # Names and keys

    def key_for(self, name: str) -> str:
        """The MogileFS key of a storage name; rejects unsafe or over-long names."""
        key = self._unchecked_key(name)
        size = _key_bytes(key)
        if size > MAX_KEY_BYTES:
            raise SuspiciousFileOperation(
                f"MogileFS key {key!r} is {size} bytes as UTF-8; MogileFS keys are limited to "
                f"{MAX_KEY_BYTES} bytes. Use a shorter name (or key_prefix)."
            )
        return key

    def _unchecked_key(self, name: str) -> str:
        """The key of a safe name, whatever its length."""
        name = str(name)
        if not name:
            raise SuspiciousFileOperation("An empty name has no MogileFS key.")
        _refuse_nul(name)
        validate_file_name(name, allow_relative_path=True)
        name = clean_name(name)
        _refuse_reserved(name)
        return f"{self.key_prefix}{name}"

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        """A free name, truncated so that its key fits in 255 bytes of UTF-8.

        Django truncates by characters; a name whose key is still too long
        in bytes is truncated again by the excess, which removes at least
        that many bytes.
        """
        name = clean_name(name)
        limit = max_length
        while True:
            if self.file_overwrite:
                candidate = get_available_overwrite_name(name, limit)
            else:
                candidate = self._free_name(name, limit)
            excess = _key_bytes(self._unchecked_key(candidate)) - MAX_KEY_BYTES
            if excess <= 0:
                return candidate
            limit = len(candidate) - excess

    def _free_name(self, name: str, max_length: int | None) -> str:
        """Django's free name, where a name the tracker holds under another
        spelling (``photo.jpg`` for ``Photo.JPG`` on MariaDB) is taken too."""
        token = _any_spelling.set(True)
        try:
            return super().get_available_name(name, max_length)
        finally:
            _any_spelling.reset(token)

    # The Storage API

    def _open(self, name: str, mode: str = "rb") -> MogileFSFile:
        # In read mode the file asks for the key's paths at once, so a
        # missing key raises FileNotFoundError (UnknownKeyError) here.
        return MogileFSFile(name, mode, self)

    async def aopen(self, name: str, mode: str = "rb") -> AsyncMogileFSFile:
        """``open`` for reading, with asyncio: an :class:`AsyncMogileFSFile`.

        FileNotFoundError for a missing name, at once. Files are written
        with ``asave``.
        """
        if mode != "rb":
            raise ValueError(
                f"aopen() opens MogileFS files for reading in mode 'rb', not {mode!r}: "
                "write with asave(name, content)."
            )
        key = self.key_for(name)

        async def opened(location: Location) -> AsyncNodeReader:
            return await self.aopen_reader(key, location)

        return AsyncMogileFSFile(name, await self.ausing_location(key, opened))

    def _reader(self, key: str) -> NodeReader:
        """A seekable stream of ``key``, located by the path cache when it knows the key."""
        return self.using_location(key, lambda location: self.open_reader(key, location))

    def open_reader(
        self, key: str, location: Location, *, offset: int = 0, length: int | None = None
    ) -> NodeReader:
        """A stream of ``key`` (or ``length`` bytes from ``offset``) from ``location``.

        With ``verify_checksum``, whole reads are checked against the MD5 the
        tracker recorded (classes with a hash type); a copy found damaged is
        marked in the path cache, so that every process reads it last.
        """
        return self.client.read_file(key, **self._read_options(key, location, offset, length))

    async def aopen_reader(
        self, key: str, location: Location, *, offset: int = 0, length: int | None = None
    ) -> AsyncNodeReader:
        """``open_reader`` with asyncio: ``await reader.read(n)``, ``async for``, ``aclose()``."""
        options = self._read_options(key, location, offset, length)
        return await self.aclient.read_file(key, **options)

    def _read_options(
        self, key: str, location: Location, offset: int, length: int | None
    ) -> dict[str, Any]:
        return {
            "offset": offset,
            "length": length,
            "paths": location.paths,
            "size": location.size,
            "md5": location.md5 if self.verify_checksum else None,
            "on_damaged": lambda url: self._path_cache.mark_damaged(key, url),
        }

    def save(self, name: str | None, content: Any, max_length: int | None = None) -> str:
        token = _max_length.set(max_length)
        try:
            return super().save(name, content, max_length=max_length)
        finally:
            _max_length.reset(token)

    async def asave(self, name: str | None, content: Any, max_length: int | None = None) -> str:
        """``save`` with asyncio: the same names, staging, checksums and durability.

        A storage without ``file_overwrite`` finds a free name with Django's
        ``get_available_name()`` in a worker thread (it is synchronous); the
        upload and the tracker's part are asyncio. The content is read in
        the event loop: a file on disk (a large upload) is read from there.
        """
        token = _max_length.set(max_length)
        try:
            if name is None:
                name = content.name
            if not hasattr(content, "chunks"):
                content = File(content, name)
            validate_file_name(name, allow_relative_path=True)
            name = await self._aavailable_name(name, max_length)
            validate_file_name(name, allow_relative_path=True)
            with self._byte_stream(name, content) as (cleaned, stream):
                name = await self._asave_stream(cleaned, stream)
            validate_file_name(name, allow_relative_path=True)
            return name
        finally:
            _max_length.reset(token)

    async def _aavailable_name(self, name: str, max_length: int | None) -> str:
        if self.file_overwrite:  # no tracker asked
            return self.get_available_name(name, max_length=max_length)
        find = sync_to_async(self.get_available_name, thread_sensitive=False)
        return await find(name, max_length=max_length)

    def _save(self, name: str, content: File) -> str:
        with self._byte_stream(name, content) as (cleaned, stream):
            return self._save_stream(cleaned, stream)

    @contextmanager
    def _byte_stream(self, name: str, content: File) -> Iterator[tuple[str, IO[bytes]]]:
        """The clean name and the content as bytes from its start (text spooled as UTF-8)."""
        name = clean_name(name)
        self.key_for(name)  # refuses the name before any byte is read
        if is_seekable(content):
            content.seek(0)
        if isinstance(content.read(0), str):
            with self._encode_text(content) as encoded:
                yield name, encoded
        else:
            yield name, content

    def _save_stream(self, name: str, stream: IO[bytes]) -> str:
        """Store ``stream`` as ``name``, or without overwrite as a name still free; the name."""
        if self.file_overwrite:
            key = self.key_for(name)
            self.client.refuse_other_spelling(key)
            self._store(key, stream)
            return name
        key = self.client.store_new_file(
            self._free_keys(name), stream, cls=self.mogile_class, staging_key=self._staging_key()
        )
        self._stored(key)
        return key[len(self.key_prefix) :]

    async def _asave_stream(self, name: str, stream: IO[bytes]) -> str:
        """``_save_stream`` with asyncio.

        Should another save take the free name before the rename, the next
        alternative is looked for in the event loop (``_free_keys``).
        """
        aclient = self.aclient
        if self.file_overwrite:
            key = self.key_for(name)
            await aclient.refuse_other_spelling(key)
            await aclient.store_file(key, stream, cls=self.mogile_class)
            await self._astored(key)
            return name
        key = await aclient.store_new_file(
            self._free_keys(name), stream, cls=self.mogile_class, staging_key=self._staging_key()
        )
        await self._astored(key)
        return key[len(self.key_prefix) :]

    def _free_keys(self, name: str) -> Iterator[str]:
        """The key of ``name`` (found free by save()), then of alternatives found free now.

        Another save can take a name between the look and the rename; the
        next alternative is looked for then, up to a bound.
        """
        yield self.key_for(name)
        for _ in range(100):
            yield self.key_for(self.get_available_name(name, max_length=_max_length.get()))

    def _staging_key(self) -> str:
        return f"{self.key_prefix}{STAGING_DIR}/{int(time.time())}-{uuid.uuid4().hex}"

    def _spool(self) -> IO[bytes]:
        """A temporary file that keeps up to ``max_memory_size`` bytes in memory."""
        return SpooledTemporaryFile(
            max_size=self.max_memory_size,
            suffix=".MogileFSFile",
            dir=setting("FILE_UPLOAD_TEMP_DIR"),
        )

    def _encode_text(self, content: File) -> IO[bytes]:
        """Text content as UTF-8 bytes, spooled (bounded memory) and rewound.

        The upload needs the length in bytes and a rewindable stream, which
        a text stream cannot give: its seek and tell count characters.
        """
        spool = self._spool()
        for chunk in content.chunks(self.chunk_size):
            spool.write(chunk.encode("utf-8"))
        spool.seek(0)
        return spool

    def _store(self, key: str, stream: IO[bytes]) -> None:
        """Store a stream under ``key`` in this storage's class."""
        self.client.store_file(key, stream, cls=self.mogile_class)
        self._stored(key)

    def _stored(self, key: str) -> None:
        """After every store: forget cached paths; wait for ``min_copies`` if asked."""
        self._path_cache.forget(key)
        if self.min_copies is None:
            return
        try:
            self.client.wait_for_copies(key, self.min_copies, self.min_copies_timeout)
        except NotDurableError as exc:
            self._not_durable(exc)

    async def _astored(self, key: str) -> None:
        """``_stored`` with asyncio."""
        self._path_cache.forget(key)
        if self.min_copies is None:
            return
        try:
            await self.aclient.wait_for_copies(key, self.min_copies, self.min_copies_timeout)
        except NotDurableError as exc:
            self._not_durable(exc)

    def _not_durable(self, exc: NotDurableError) -> None:
        """``min_copies_action``: raise, or log at WARNING."""
        if self.min_copies_action == "raise":
            raise exc
        logger.warning("%s", exc)

    def delete(self, name: str) -> None:
        key = self._key_to_delete(name)
        try:
            if not self.client.compares_bytes:
                self.client.exact_file_info(key)  # not another spelling's file
            self.client.delete(key)
        except UnknownKeyError:
            _log_missing(key)
        self._path_cache.forget(key)

    async def adelete(self, name: str) -> None:
        """``delete`` with asyncio."""
        key = self._key_to_delete(name)
        aclient = self.aclient
        try:
            if not aclient.compares_bytes:
                await aclient.exact_file_info(key)  # not another spelling's file
            await aclient.delete(key)
        except UnknownKeyError:
            _log_missing(key)
        self._path_cache.forget(key)

    def _key_to_delete(self, name: str) -> str:
        if not name:
            raise ValueError("The name must be given to delete().")
        return self.key_for(name)

    def exists(self, name: str) -> bool:
        key = self._key_to_look_up(name)
        if not isinstance(key, str):
            return key
        try:
            info = self.client.file_info(key)
        except UnknownKeyError:
            return False
        return _any_spelling.get() or not self.client.spelt_otherwise(key, info.fid)

    async def aexists(self, name: str) -> bool:
        """``exists`` with asyncio."""
        key = self._key_to_look_up(name)
        if not isinstance(key, str):
            return key
        try:
            info = await self.aclient.file_info(key)
        except UnknownKeyError:
            return False
        return _any_spelling.get() or not await self.aclient.spelt_otherwise(key, info.fid)

    def _key_to_look_up(self, name: str) -> str | bool:
        """The key ``exists()`` asks the tracker for, or its answer when no tracker is needed."""
        if not name:  # the root "directory" always exists
            return True
        key = self._unchecked_key(name)
        if _key_bytes(key) > MAX_KEY_BYTES:
            return False  # no tracker can hold it; get_available_name asks before truncating
        return key

    def size(self, name: str) -> int:
        return self.client.exact_file_info(self.key_for(name)).length

    async def asize(self, name: str) -> int:
        """``size`` with asyncio."""
        return (await self.aclient.exact_file_info(self.key_for(name))).length

    def url(self, name: str, expire: int | None = None) -> str:
        """``base_url`` plus the percent-encoded name; signed when asked.

        With ``expire`` (whole seconds), or for a storage with ``signed_urls``
        (``url_expire`` seconds), the URL carries ``expires`` and
        ``signature`` query parameters that the view checks: a link that
        opens this file of this storage until then, and nothing else.
        """
        plain = self._plain_url(name)
        if expire is None and not self.signed_urls:
            return plain
        if expire is not None:
            _check_link_lifetime(expire, "url(name, expire=...)")
        expires = int(time.time()) + (self.url_expire if expire is None else expire)
        signature = self._url_signer().signature(f"{expires}:{clean_name(name)}")
        return f"{plain}?{urlencode({'expires': expires, 'signature': signature})}"

    def url_signature_valid(self, name: str, expires: str | None, signature: str | None) -> bool:
        """Whether ``expires``/``signature`` (from a signed URL) open ``name`` now.

        The signature ``url()`` makes for this name and expiry is computed
        and compared with the one given, for ``SECRET_KEY`` and each key of
        ``SECRET_KEY_FALLBACKS`` (rotating SECRET_KEY leaves issued links
        working until they expire); nothing of the request is parsed as signed text.
        """
        deadline = parse_expires(expires)
        if deadline is None or not signature or deadline < time.time():
            return False
        value = f"{deadline}:{clean_name(name)}"
        signer = self._url_signer()
        return any(
            constant_time_compare(signature, signer.signature(value, key))
            for key in [signer.key, *signer.fallback_keys]
        )

    def _url_signer(self) -> Signer:
        # The salt binds a signature to this storage's files (domain and key prefix).
        return Signer(salt=f"storages_mogile.url:{self.domain}:{self.key_prefix}")

    def _plain_url(self, name: str) -> str:
        if self.base_url is None:
            raise ValueError("This file is not accessible via a URL: set MOGILEFS_MEDIA_URL.")
        self.key_for(name)  # validates the name
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"The name {name!r} holds bytes that are not UTF-8 (stored by another "
                "program): Django routes URLs as text, so no URL can name it. Copy the file "
                "to a UTF-8 name to serve it."
            ) from None
        return urljoin(self.base_url, filepath_to_uri(clean_name(name)).lstrip("/"))

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        listing = _Listing(self._listing_prefix(path), self.key_prefix)
        for key in self.client.iter_keys(prefix=listing.prefix or None):
            listing.add(key)
        return listing.result()

    async def alistdir(self, path: str) -> tuple[list[str], list[str]]:
        """``listdir`` with asyncio."""
        listing = _Listing(self._listing_prefix(path), self.key_prefix)
        async for key in self.aclient.iter_keys(prefix=listing.prefix or None):
            listing.add(key)
        return listing.result()

    def _listing_prefix(self, path: str) -> str:
        """The key prefix of the directory ``path``; refuses NUL and reserved directories."""
        _refuse_nul(path)
        _refuse_reserved(clean_name(path).strip("/"))
        prefix = clean_name(path).strip("/")
        return f"{self.key_prefix}{prefix}/" if prefix else self.key_prefix

    def get_modified_time(self, name: str) -> datetime:
        key = self.key_for(name)
        found = self.using_location(
            key, lambda location: self.client.stat(key, paths=location.paths, size=location.size)
        )
        return _modified_time(name, found)

    async def aget_modified_time(self, name: str) -> datetime:
        """``get_modified_time`` with asyncio."""
        key = self.key_for(name)

        async def stat(location: Location) -> NodeStat:
            return await self.aclient.stat(key, paths=location.paths, size=location.size)

        return _modified_time(name, await self.ausing_location(key, stat))

    # Paths, for serving

    def get_paths(self, name: str) -> list[str]:
        """The storage-node URLs of a name, from the path cache when it has them."""
        return self.get_key_location(self.key_for(name)).paths

    def get_key_location(self, key: str) -> Location:
        """The storage-node URLs, length, MD5 and fid of a key, from the path cache when it
        has them; copies found damaged come last.

        Raises FileNotFoundError for a missing key. A miss costs two tracker
        round trips (the length guards reads against damaged copies).
        """
        location = self._path_cache.get(key)
        return self._fresh_location(key) if location is None else location

    def using_location(self, key: str, use: Callable[[Location], T]) -> T:
        """``use(location)`` with the key's location, from the path cache when it has it.

        When every cached path fails (``use`` raises NoPathsError), the
        tracker is asked once more and the fresh location replaces the
        cached one: the copies may have moved since (a node lost, the file
        replicated after it was cached with one path).
        """
        cached = self._path_cache.get(key)
        if cached is not None:
            try:
                return use(cached)
            except NoPathsError as exc:
                _log_stale(key, exc)
        return use(self._fresh_location(key))

    async def ausing_location(self, key: str, use: Callable[[Location], Awaitable[T]]) -> T:
        """``using_location`` for a coroutine ``use``, the tracker asked with asyncio.

        The path cache is read in the event loop with its synchronous methods
        (docs/serving.md, "Under ASGI").
        """
        cached = self._path_cache.get(key)
        if cached is not None:
            try:
                return await use(cached)
            except NoPathsError as exc:
                _log_stale(key, exc)
        return await use(await self._afresh_location(key))

    def _fresh_location(self, key: str) -> Location:
        """The key's location from the tracker, kept in the path cache."""
        location = self.client.locate(key, noverify=self.noverify, pathcount=self.pathcount)
        if location.fid is not None:
            self.client.require_exact(key, location.fid)
        return self._path_cache.set(key, location)

    async def _afresh_location(self, key: str) -> Location:
        """``_fresh_location`` with asyncio."""
        aclient = self.aclient
        location = await aclient.locate(key, noverify=self.noverify, pathcount=self.pathcount)
        if location.fid is not None:
            await aclient.require_exact(key, location.fid)
        return self._path_cache.set(key, location)


class _Listing:
    """The directories and files of one directory, from the keys under its ``prefix``."""

    def __init__(self, prefix: str, key_prefix: str) -> None:
        self.prefix = prefix
        self._at_root = prefix == key_prefix
        self._directories: set[str] = set()
        self._files: list[str] = []

    def add(self, key: str) -> None:
        head, sep, _ = key[len(self.prefix) :].partition("/")
        if sep:
            self._directories.add(head)
        else:
            self._files.append(head)

    def result(self) -> tuple[list[str], list[str]]:
        directories = self._directories
        if self._at_root:
            directories -= _RESERVED_DIRS  # uploads in progress and quarantined orphans
        return sorted(directories), self._files


def _modified_time(name: str, found: NodeStat) -> datetime:
    """The storage node's Last-Modified of ``name``, naive without USE_TZ."""
    if found.last_modified is None:
        raise NotImplementedError(
            f"The storage node serving {name!r} sent no Last-Modified header."
        )
    if setting("USE_TZ"):
        return found.last_modified
    return timezone.make_naive(found.last_modified)


def _log_missing(key: str) -> None:
    logger.debug("delete of missing MogileFS key %r ignored", key)


def _log_stale(key: str, exc: NoPathsError) -> None:
    logger.info("every cached path of key %r failed (%s); asking the tracker", key, exc)


def _key_bytes(key: str) -> int:
    """A key's length on the wire: UTF-8, with other programs' raw bytes as they were."""
    return len(key.encode(ENCODING, ERRORS))


def _refuse_reserved(name: str) -> None:
    """SuspiciousFileOperation for a (clean) name in the staging or quarantine directory."""
    top = name.partition("/")[0]
    if top in _RESERVED_DIRS:
        purpose = "stages uploads" if top == STAGING_DIR else "keeps quarantined orphans"
        raise SuspiciousFileOperation(
            f"The name {name!r} is in {top!r}, where storages-mogile {purpose}; "
            "choose a name outside it."
        )


def _refuse_nul(name: str) -> None:
    """SuspiciousFileOperation for a name holding NUL.

    A tracker on PostgreSQL cuts keys at NUL, so ``report.txt\\0.png`` would
    be the key of ``report.txt``: another file to overwrite or to serve.
    """
    if "\0" in name:
        raise SuspiciousFileOperation(
            f"The name {name!r} contains a NUL character, which MogileFS trackers on "
            "PostgreSQL cut keys at (it would name another file). Remove it from the name."
        )


def parse_expires(value: str | None) -> int | None:
    """The Unix time a signed URL's ``expires`` names: ASCII digits only, else None."""
    return parse_digits(value, max_digits=EXPIRES_DIGITS)


def _check_link_lifetime(seconds: object, what: str) -> None:
    """TypeError or ValueError, naming ``what``, unless ``seconds`` is a lifetime a
    signed link can have (a float would give links that never open)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise TypeError(
            f"{what} is {seconds!r}: the lifetime of a link is a whole number of seconds "
            f"(an int such as 3600), not a {type(seconds).__name__}."
        )
    longest = 10**EXPIRES_DIGITS - 1 - int(time.time())
    if not 0 < seconds <= longest:
        raise ValueError(
            f"{what} is {seconds!r}: the lifetime of a link is a whole number of seconds "
            f"from 1 to {longest} (its expiry must fit {EXPIRES_DIGITS} digits)."
        )


def mogilefs_aliases() -> list[str]:
    """The STORAGES entries whose BACKEND is MogileFSStorage (or a subclass), sorted."""
    found = []
    for alias, entry in getattr(django_settings, "STORAGES", {}).items():
        try:
            backend = import_string(entry.get("BACKEND", ""))
        except ImportError:
            continue  # Django reports a wrong BACKEND itself
        if isinstance(backend, type) and issubclass(backend, MogileFSStorage):
            found.append(alias)
    return sorted(found)


def mogile_storage(
    klass: str | None = None, alias: str | None = None, **options: Any
) -> MogileFSStorage:
    """A MogileFS storage whose files go to the MogileFS class ``klass``.

    ``models.ImageField(storage=mogile_storage(klass="avatar"))`` gives a
    field its own replication class. Domain, trackers and the other options
    come, when the storage is used, from the project's one MogileFS entry in
    ``STORAGES`` (or the one named by ``alias`` where there are several),
    then from the ``MOGILEFS_*`` settings. Migrations record only the
    arguments given here (``MogileFSStorage(mogile_class='avatar')``).
    """
    if klass is not None:
        options["mogile_class"] = klass
    if alias is not None:
        options["storages_alias"] = alias
    return MogileFSStorage(**options)


__all__ = [
    "MAX_KEY_BYTES",
    "AsyncMogileFSFile",
    "MogileFSFile",
    "MogileFSStorage",
    "aclose_clients",
    "mogile_storage",
    "mogilefs_aliases",
    "shared_client",
]

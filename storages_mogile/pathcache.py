"""A cache of where each key is stored, on Django's cache framework.

Serving or reading a file needs its storage-node paths and its length (to
skip a damaged copy); asking a tracker for them on every request costs two
round trips. With a cache alias configured, both are kept for ``timeout``
seconds and dropped by the storage whenever it saves or deletes the key, so
a cached entry never outlives the file version it describes on this
process's writes. (Writes by other programs are seen after the timeout.)
"""

from __future__ import annotations

import hashlib

from django.core.cache import caches

from storages_mogile.client import Location


class PathCache:
    """Locations (paths and length) per key in the cache ``alias``; nothing when ``alias`` is None."""

    def __init__(self, alias: str | None, timeout: float, domain: str | None) -> None:
        self.alias = alias
        self.timeout = timeout
        self.domain = domain or ""

    def _cache_key(self, key: str) -> str:
        # Keys may hold spaces and control characters that memcached refuses.
        digest = hashlib.sha256(f"{self.domain}\0{key}".encode("utf-8", "surrogateescape"))
        # ".v2": entries hold (paths, length); 0.1's held paths alone.
        return f"storages_mogile.paths.v2.{digest.hexdigest()}"

    def get(self, key: str) -> Location | None:
        """The cached location of ``key``, or None on a miss."""
        if self.alias is None:
            return None
        entry = caches[self.alias].get(self._cache_key(key))
        return None if entry is None else Location(*entry)

    def set(self, key: str, location: Location) -> None:
        """Remember where ``key`` is; a file without paths is not worth keeping."""
        if self.alias is not None and location.paths:
            caches[self.alias].set(self._cache_key(key), tuple(location), self.timeout)

    def forget(self, key: str) -> None:
        """Drop the paths of ``key`` (after a save or delete)."""
        if self.alias is not None:
            caches[self.alias].delete(self._cache_key(key))

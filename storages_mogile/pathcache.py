"""A cache of storage-node paths per key, on Django's cache framework.

Serving a file needs its paths; asking a tracker for them on every request
costs a round trip. With a cache alias configured, paths are kept for
``timeout`` seconds and dropped by the storage whenever it saves or deletes
the key, so a cached path never outlives the file version it points to on
this process's writes. (Writes by other programs are seen after the timeout.)
"""

from __future__ import annotations

import hashlib

from django.core.cache import caches


class PathCache:
    """Paths per key in the cache ``alias``; does nothing when ``alias`` is None."""

    def __init__(self, alias: str | None, timeout: float, domain: str | None) -> None:
        self.alias = alias
        self.timeout = timeout
        self.domain = domain or ""

    def _cache_key(self, key: str) -> str:
        # Keys may hold spaces and control characters that memcached refuses.
        digest = hashlib.sha256(f"{self.domain}\0{key}".encode("utf-8", "surrogateescape"))
        return f"storages_mogile.paths.{digest.hexdigest()}"

    def get(self, key: str) -> list[str] | None:
        """The cached paths of ``key``, or None on a miss."""
        if self.alias is None:
            return None
        return caches[self.alias].get(self._cache_key(key))

    def set(self, key: str, paths: list[str]) -> None:
        """Remember the paths of ``key``; an empty list is not worth keeping."""
        if self.alias is not None and paths:
            caches[self.alias].set(self._cache_key(key), paths, self.timeout)

    def forget(self, key: str) -> None:
        """Drop the paths of ``key`` (after a save or delete)."""
        if self.alias is not None:
            caches[self.alias].delete(self._cache_key(key))

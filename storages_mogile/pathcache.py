"""A cache of where each key is stored, on Django's cache framework.

Serving or reading a file needs its storage-node paths and its length (to
skip a damaged copy); asking a tracker for them on every request costs two
round trips. With a cache alias configured, both are kept for ``timeout``
seconds and dropped by the storage whenever it saves or deletes the key, so
a cached entry never outlives the file version it describes on this
process's writes. (Writes by other programs are seen after the timeout.)

A location with fewer paths than its class will have (a file read right
after its upload, before replication) is kept only ``incomplete_timeout``
seconds, so the copies made meanwhile are soon known. Copies found damaged
are remembered apart from the location, for ``damaged_timeout`` seconds,
and every location of the key is handed out with them last.
"""

from __future__ import annotations

import hashlib

from django.core.cache import caches

from storages_mogile.client import Location
from storages_mogile.client.damaged import damaged_last


class PathCache:
    """Locations (paths and length) per key in the cache ``alias``; nothing when ``alias`` is None."""

    incomplete_timeout = 5.0  # seconds a location awaiting its copies is kept
    damaged_timeout = 86_400.0  # seconds a damaged copy is remembered

    def __init__(self, alias: str | None, timeout: float, domain: str | None) -> None:
        self.alias = alias
        self.timeout = timeout
        self.domain = domain or ""

    def _cache_key(self, key: str, kind: str = "paths") -> str:
        # Keys may hold spaces and control characters that memcached refuses.
        digest = hashlib.sha256(f"{self.domain}\0{key}".encode("utf-8", "surrogateescape"))
        # ".v3": entries hold a whole Location; 0.2's held (paths, length, md5).
        return f"storages_mogile.{kind}.v3.{digest.hexdigest()}"

    def get(self, key: str) -> Location | None:
        """The cached location of ``key``, damaged copies last; None on a miss."""
        if self.alias is None:
            return None
        names = [self._cache_key(key), self._cache_key(key, "damaged")]
        found = caches[self.alias].get_many(names)
        entry = found.get(names[0])
        if entry is None:
            return None
        return self._damaged_last(Location(*entry), found.get(names[1], ()))

    def set(self, key: str, location: Location) -> Location:
        """Remember where ``key`` is; the location as served, damaged copies last.

        A file without paths is not worth keeping.
        """
        if self.alias is None or not location.paths:
            return location
        cache = caches[self.alias]
        location = self._damaged_last(location, cache.get(self._cache_key(key, "damaged"), ()))
        timeout = self.timeout if location.complete else min(self.timeout, self.incomplete_timeout)
        cache.set(self._cache_key(key), tuple(location), timeout)
        return location

    def mark_damaged(self, key: str, url: str) -> None:
        """Remember that the copy of ``key`` at ``url`` is damaged, for every process."""
        if self.alias is None:
            return
        cache, name = caches[self.alias], self._cache_key(key, "damaged")
        known = tuple(cache.get(name, ()))
        if url not in known:
            # Two processes marking at once may keep one URL of the two: it
            # is found again (and marked) by the next read that meets it.
            cache.set(name, (*known, url), self.damaged_timeout)

    def forget(self, key: str) -> None:
        """Drop the paths of ``key`` (after a save or delete).

        Damaged copies stay marked: their paths name the old fid, which no
        new version of the key shares.
        """
        if self.alias is not None:
            caches[self.alias].delete(self._cache_key(key))

    @staticmethod
    def _damaged_last(location: Location, damaged: tuple[str, ...]) -> Location:
        if not damaged:
            return location
        return location._replace(paths=damaged_last(location.paths, damaged))

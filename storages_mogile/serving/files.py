"""The stored file a request asks for."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import Http404

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.client.errors import NoPathsError


@dataclass(frozen=True)
class ServedFile:
    """A stored file to serve: its storage, name, MogileFS key, storage-node URLs, length,
    and MD5 (hex) when the tracker recorded one."""

    storage: MogileFSStorage
    name: str
    key: str
    paths: list[str]
    size: int
    md5: str | None

    @classmethod
    def find(cls, storage: MogileFSStorage, name: str, key: str) -> ServedFile:
        """The file stored as ``key``; Http404 when there is none.

        The paths and length come from the storage's path cache when it
        holds them, so a cache hit costs no tracker round trip. A key that
        exists without a storage node holding it raises NoPathsError.
        """
        try:
            paths, size, md5 = storage.get_key_location(key)
        except FileNotFoundError:
            raise Http404(f"No file {name!r} in MogileFS domain {storage.domain!r}.") from None
        if not paths:
            raise NoPathsError(f"the tracker has no storage node for key {key!r}", key=key)
        return cls(storage, name, key, paths, size, md5)

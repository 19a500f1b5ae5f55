"""The stored file a request asks for."""

from __future__ import annotations

from dataclasses import dataclass

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.client import Location
from storages_mogile.client.errors import NoPathsError


@dataclass(frozen=True)
class ServedFile:
    """A stored file to serve: its storage, name, MogileFS key, storage-node URLs, length,
    MD5 (hex) when the tracker recorded one, and fid when known."""

    storage: MogileFSStorage
    name: str
    key: str
    paths: list[str]
    size: int
    md5: str | None
    fid: int | None

    @classmethod
    def at(cls, storage: MogileFSStorage, name: str, key: str, location: Location) -> ServedFile:
        """The file stored as ``key`` at ``location``; NoPathsError when it has no path."""
        if not location.paths:
            raise NoPathsError(f"the tracker has no storage node for key {key!r}", key=key)
        return cls(storage, name, key, location.paths, location.size, location.md5, location.fid)

    @property
    def location(self) -> Location:
        """Where the file is, as the storage's reader takes it."""
        return Location(self.paths, self.size, self.md5, self.fid)

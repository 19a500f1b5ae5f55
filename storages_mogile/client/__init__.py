"""A Python 3 MogileFS client (trackers over TCP, storage nodes over HTTP)."""

from .admin import Admin, ClassInfo
from .client import Client, FileInfo, Location
from .errors import (
    ChecksumMismatchError,
    CloseOutcomeUnknownError,
    KeyExistsError,
    KeyNotUTF8Error,
    ListingStalledError,
    MogileFSError,
    NoDevicesError,
    NoPathsError,
    NotDurableError,
    SpellingTakenError,
    StorageNodeError,
    TrackerError,
    TrackerUnavailableError,
    UnknownClassError,
    UnknownDomainError,
    UnknownKeyError,
    UnrewindableSourceError,
)
from .files import NewFile, NodeReader
from .guard import ForeignTrackerError
from .nodes import NodeStat

__all__ = [
    "Admin",
    "ChecksumMismatchError",
    "ClassInfo",
    "Client",
    "CloseOutcomeUnknownError",
    "FileInfo",
    "ForeignTrackerError",
    "KeyExistsError",
    "KeyNotUTF8Error",
    "ListingStalledError",
    "Location",
    "MogileFSError",
    "NewFile",
    "NoDevicesError",
    "NoPathsError",
    "NodeReader",
    "NodeStat",
    "NotDurableError",
    "SpellingTakenError",
    "StorageNodeError",
    "TrackerError",
    "TrackerUnavailableError",
    "UnknownClassError",
    "UnknownDomainError",
    "UnknownKeyError",
    "UnrewindableSourceError",
]

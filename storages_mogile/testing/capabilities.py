"""What a storage under contract test declares it can and cannot do."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class PathSupport(enum.Enum):
    """What ``Storage.path(name)`` gives for a stored name."""

    #: ``path()`` raises ``NotImplementedError``: the files are not on a local disk.
    NONE = "none"
    #: ``path()`` returns an absolute local path that ``open()`` reads the file from.
    LOCAL = "local"
    #: ``path()`` returns an absolute path under the storage's location, but no file
    #: lives there (Django's ``InMemoryStorage``).
    VIRTUAL = "virtual"


@dataclass(frozen=True)
class Capabilities:
    """Optional parts of the Django ``Storage`` API, as one backend provides them.

    The defaults describe a remote storage with a full API. A capability that
    is declared missing is not skipped: the contract then checks that the
    storage fails the way Django documents for that case.
    """

    #: ``save()`` on a taken name replaces the content under that same name
    #: (``FileSystemStorage(allow_overwrite=True)``, ``S3Storage(file_overwrite=True)``)
    #: instead of storing under an alternative name.
    overwrite: bool = False
    #: Saves of one name at the same moment (threads or processes) each get a
    #: name of their own holding their own bytes. Without it, the contract's
    #: race test is an expected failure (the storage checks and writes in two
    #: steps, as django-storages' S3Storage does).
    concurrent_saves: bool = True
    #: ``listdir()`` lists directories and files; otherwise it raises ``NotImplementedError``.
    listdir: bool = True
    #: ``url()`` returns a URL; otherwise it raises ``NotImplementedError``.
    url: bool = True
    #: Files returned by ``open()`` can seek; otherwise ``seekable()`` is false and
    #: seeking back raises ``io.UnsupportedOperation``.
    seekable_read: bool = True
    #: ``get_modified_time()`` works; otherwise it raises ``NotImplementedError``.
    modified_time: bool = True
    #: ``get_created_time()`` works; otherwise it raises ``NotImplementedError``.
    created_time: bool = True
    #: ``get_accessed_time()`` works; otherwise it raises ``NotImplementedError``.
    accessed_time: bool = True
    #: What ``path()`` gives.
    path: PathSupport = PathSupport.NONE

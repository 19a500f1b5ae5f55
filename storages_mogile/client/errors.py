"""Exceptions raised by the MogileFS client.

Everything derives from :class:`MogileFSError`, so one ``except`` catches all
of them. Tracker ``ERR`` replies become :class:`TrackerError` (or a subclass
chosen by the error code); a tracker that cannot be reached or that breaks
the protocol is a :class:`TrackerUnavailableError`; a storage node that
fails is a :class:`StorageNodeError`.
"""

from __future__ import annotations

from collections.abc import Sequence


class MogileFSError(Exception):
    """Base class of every error the MogileFS client raises."""


class TrackerUnavailableError(MogileFSError, ConnectionError):
    """No tracker answered: all refused, timed out, or sent garbage.

    ``attempts`` lists ``(tracker, reason)`` for every tracker tried, in the
    order they were tried.
    """

    def __init__(self, message: str, attempts: Sequence[tuple[str, str]] = ()) -> None:
        self.attempts = list(attempts)
        super().__init__(message)


class TrackerError(MogileFSError):
    """A tracker answered ``ERR <code> <message>``.

    ``code`` is the tracker's error code (``unknown_key``, ``unreg_domain``,
    ...), ``message`` its decoded text, ``tracker`` the ``host:port`` that
    answered and ``command`` the request's command name. ``key`` and
    ``domain``, when the request had them, name what the request was about.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        command: str = "",
        tracker: str = "",
        key: str | None = None,
        domain: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.command = command
        self.tracker = tracker
        self.key = key
        self.domain = domain
        subject = f" for key {key!r}" if key is not None else ""
        subject += f" in domain {domain!r}" if domain is not None else ""
        where = f" from tracker {tracker}" if tracker else ""
        text = message if message and message != code else ""
        detail = f": {text}" if text else ""
        super().__init__(f"{command or 'request'}{subject} failed{where}: {code}{detail}")


class UnknownKeyError(TrackerError, FileNotFoundError):
    """The key does not exist in the domain (``unknown_key``, ``invalid_key``)."""


class UnknownDomainError(TrackerError):
    """The domain is not registered (``unreg_domain``, ``domain_not_found``)."""


class UnknownClassError(TrackerError):
    """The class does not exist in the domain (``unreg_class``, ``class_not_found``)."""


class KeyExistsError(TrackerError, FileExistsError):
    """A rename target already exists (``key_exists``)."""


class NoDevicesError(TrackerError):
    """The tracker has no writable device for the file (``no_devices``)."""


# The real server uses different codes for the same problem depending on the
# command (updateclass says invalid_key, create_open says unreg_class, ...).
_CODES: dict[str, type[TrackerError]] = {
    "unknown_key": UnknownKeyError,
    "invalid_key": UnknownKeyError,
    "unreg_domain": UnknownDomainError,
    "domain_not_found": UnknownDomainError,
    "unreg_class": UnknownClassError,
    "class_not_found": UnknownClassError,
    "key_exists": KeyExistsError,
    "no_devices": NoDevicesError,
}


def tracker_error(
    code: str,
    message: str,
    *,
    command: str = "",
    tracker: str = "",
    key: str | None = None,
    domain: str | None = None,
) -> TrackerError:
    """The exception for a tracker's ``ERR`` reply, typed by its code."""
    cls = _CODES.get(code, TrackerError)
    return cls(code, message, command=command, tracker=tracker, key=key, domain=domain)


class StorageNodeError(MogileFSError):
    """A storage node refused or failed a request.

    ``url`` is the node URL, ``status`` the HTTP status (``None`` when the
    connection itself failed).
    """

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        self.url = url
        self.status = status
        super().__init__(message)


class ChecksumMismatchError(StorageNodeError):
    """A copy's bytes do not have the MD5 the tracker recorded for the file.

    ``url`` is the copy read; ``expected`` and ``actual`` are hex digests.
    Raised at the end of a read that verifies, so the caller knows the
    bytes it was given are not the file's.
    """

    def __init__(self, message: str, *, url: str, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(message, url=url)


class UnrewindableSourceError(MogileFSError):
    """A store must start over, but its source is not seekable and was read from.

    A destination failed mid-upload, or vanished before the tracker could
    commit the upload, and the bytes already read cannot be read again.
    Nothing was stored under ``key``, which keeps its previous content unless
    a ``create_close`` died (the message says so): the store can be tried
    again with a new stream of the same bytes.
    """

    def __init__(self, message: str, *, key: str) -> None:
        self.key = key
        super().__init__(message)


class CloseOutcomeUnknownError(TrackerError):
    """A store's ``create_close`` lost its reply, and its outcome is still open.

    The close sent again was refused (``no_temp_file``): the first attempt
    holds the upload on its tracker, and it had not committed when the
    client stopped waiting. It may still commit later, and then ``key``
    holds this file. Storing anew meanwhile would race it (the late commit
    would replace the newer store), so the client does not; check the key
    (``file_info``) before storing again.
    """


class NoPathsError(MogileFSError):
    """The key exists but no storage node could serve it (every path failed).

    ``key`` is the key asked for; ``attempts`` lists ``(url, reason)`` for
    every path tried (empty when the tracker returned no path at all).
    """

    def __init__(
        self, message: str, *, key: str | None = None, attempts: Sequence[tuple[str, str]] = ()
    ) -> None:
        self.key = key
        self.attempts = list(attempts)
        super().__init__(message)


class NotDurableError(MogileFSError):
    """A stored file did not reach the number of copies asked for in time.

    The file *is* stored (``key``, with ``copies`` copies); replication may
    still complete. ``wanted`` is the number asked for.
    """

    def __init__(self, message: str, *, key: str, copies: int, wanted: int) -> None:
        self.key = key
        self.copies = copies
        self.wanted = wanted
        super().__init__(message)


class ListingStalledError(MogileFSError):
    """A list_keys page made no progress: the listing would never end.

    ``prefix`` and ``after`` are what the stalled page was asked for.
    """

    def __init__(self, message: str, *, prefix: str | None, after: str | None) -> None:
        self.prefix = prefix
        self.after = after
        super().__init__(message)


class SpellingTakenError(MogileFSError, FileExistsError):
    """The tracker holds ``key`` under another spelling (its database calls
    the two equal, like MariaDB's ``utf8mb4_general_ci`` for ``Q.txt`` and
    ``q.txt``): storing ``key`` would replace that other file.
    """

    def __init__(self, message: str, *, key: str) -> None:
        self.key = key
        super().__init__(message)


class KeyNotUTF8Error(TrackerError, ValueError):
    """The tracker's database refused ``key``, which holds bytes that are not
    valid UTF-8: a MariaDB/MySQL text column in strict mode stores only
    UTF-8. Nothing was stored or renamed. ``code`` is the tracker's
    (``db`` from ``create_open``, ``failure`` from ``rename``).
    """

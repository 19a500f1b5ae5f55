"""The quarantine: where ``mogilefs_audit`` moves orphans instead of deleting them.

An orphan moves by a MogileFS ``rename`` (the tracker's metadata only, no
byte is copied) to ``.storages-mogile-quarantine/<unix time>/<original key>``
at the root of its domain, and stays there, readable and restorable, until
``mogilefs_quarantine purge`` deletes it after the retention period.

A rename names keys, not files: a file saved under the key between the last
look and the rename would be moved instead. So a move is made only while
the key still holds the file (fid) that was looked at, the moved fid is
checked afterwards, and a wrong file is put back at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.conf import settings

from storages_mogile.backends.mogile import MAX_KEY_BYTES, QUARANTINE_DIR
from storages_mogile.client import Client, KeyExistsError, UnknownKeyError
from storages_mogile.client.protocol import ENCODING, ERRORS
from storages_mogile.digits import parse_digits

logger = logging.getLogger(__name__)

PREFIX = f"{QUARANTINE_DIR}/"

#: Seconds a quarantined key is kept before ``purge`` may delete it (30 days),
#: unless the ``MOGILEFS_QUARANTINE_RETENTION`` setting says otherwise.
DEFAULT_RETENTION = 30 * 24 * 3600


class NotMovedError(Exception):
    """A key was left where it was (or put back): the message says why."""


class StrandedError(Exception):
    """A file moved by mistake could not be put back: it stays in the quarantine."""


class RestoreRefusedError(Exception):
    """A quarantined key was not restored: the message says why."""


def retention() -> int:
    """The retention period in seconds (``MOGILEFS_QUARANTINE_RETENTION``)."""
    value = getattr(settings, "MOGILEFS_QUARANTINE_RETENTION", DEFAULT_RETENTION)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"MOGILEFS_QUARANTINE_RETENTION must be a whole number of seconds (0 or more), "
            f"not {value!r}."
        )
    return value


@dataclass(frozen=True)
class Entry:
    """One quarantined file: its key in the quarantine, when it moved, where from."""

    key: str
    moved_at: int
    original: str

    @classmethod
    def parse(cls, key: str) -> Entry | None:
        """The entry of a quarantine key; None for a key not laid out as one."""
        moment, sep, original = key.removeprefix(PREFIX).partition("/")
        moved_at = parse_digits(moment)
        if not key.startswith(PREFIX) or not sep or not original or moved_at is None:
            return None
        return cls(key, moved_at, original)

    def age(self, now: float) -> float:
        return now - self.moved_at


class Quarantine:
    """The quarantine of one MogileFS domain (the client's)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @staticmethod
    def holds(key: str) -> bool:
        """Whether ``key`` is a quarantine key."""
        return key.startswith(PREFIX)

    def move(self, key: str, fid: int, referenced: Callable[[], bool]) -> Entry:
        """Move the file ``fid`` under ``key`` into the quarantine; its entry.

        ``referenced`` says whether a row refers to the key now: it is asked
        right before the move and again after it (a row made in between
        puts the file back). NotMovedError when the key holds another file,
        is too long for a quarantine key, or is referred to; StrandedError
        when a file moved by mistake cannot be put back.
        """
        entry = self._entry_for(key)
        if self._fid(key) != fid:
            raise NotMovedError(f"{key}: saved again or deleted since it was looked at; kept")
        if referenced():
            raise NotMovedError(f"{key}: a row refers to it now; kept")
        try:
            self.client.rename(key, entry.key)
        except (UnknownKeyError, KeyExistsError) as exc:
            raise NotMovedError(f"{key}: not moved ({exc}); kept") from exc
        moved = self._fid(entry.key)
        if moved is None:
            raise NotMovedError(f"{key}: deleted by another client during the move")
        if moved != fid:
            self._put_back(entry, f"it was saved again (fid {moved}, not {fid}) during the move")
        if referenced():
            self._put_back(entry, "a row came to refer to it during the move")
        logger.info("moved %r (fid %d) into the quarantine as %r", key, fid, entry.key)
        return entry

    def entries(self) -> Iterator[Entry]:
        """Every quarantined file, oldest move first."""
        for key in self.client.iter_keys(PREFIX):
            entry = Entry.parse(key)
            if entry is not None:
                yield entry

    def restore(self, entry: Entry) -> None:
        """Move a quarantined file back to its key; refused when that key exists again."""
        try:
            self.client.rename(entry.key, entry.original)
        except KeyExistsError as exc:
            raise RestoreRefusedError(
                f"{entry.original} exists again (another file was saved under it): "
                f"{entry.key} stays in the quarantine"
            ) from exc
        except UnknownKeyError as exc:
            raise RestoreRefusedError(f"{entry.key} is not in the quarantine") from exc
        logger.info("restored %r from the quarantine", entry.original)

    def purge(self, entry: Entry) -> None:
        """Delete a quarantined file for good."""
        try:
            self.client.delete(entry.key)
        except UnknownKeyError:
            logger.debug("quarantined key %r was gone already", entry.key)

    def _entry_for(self, key: str) -> Entry:
        moment = int(time.time())
        entry = Entry(f"{PREFIX}{moment}/{key}", moment, key)
        size = len(entry.key.encode(ENCODING, ERRORS))
        if size > MAX_KEY_BYTES:
            raise NotMovedError(
                f"{key}: its quarantine key would be {size} bytes, over MogileFS's "
                f"{MAX_KEY_BYTES}; kept (delete it by hand if it is no one's)"
            )
        return entry

    def _put_back(self, entry: Entry, why: str) -> None:
        """Rename a file moved by mistake back to its key; NotMovedError, or StrandedError
        when the key was taken again meanwhile."""
        try:
            self.client.rename(entry.key, entry.original)
        except KeyExistsError as exc:
            logger.error(
                "%s: %s, and its key was taken again: the file stays in the quarantine "
                "as %r; restore it by hand",
                entry.original,
                why,
                entry.key,
            )
            raise StrandedError(
                f"{entry.original}: {why}; its key was taken again, so it stays in the "
                f"quarantine as {entry.key}: restore it by hand"
            ) from exc
        raise NotMovedError(f"{entry.original}: {why}; put back")

    def _fid(self, key: str) -> int | None:
        try:
            return self.client.file_info(key).fid
        except UnknownKeyError:
            return None

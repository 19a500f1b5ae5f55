"""``manage.py mogilefs_audit``: stored files no row refers to, and rows whose file is gone."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from storages_mogile.backends.mogile import STAGING_DIR, MogileFSStorage
from storages_mogile.client import MogileFSError, UnknownKeyError
from storages_mogile.clusters import referenced_names

SAMPLE = 10
DEFAULT_GRACE = 24 * 3600


@dataclass
class Audit:
    """One storage namespace (trackers, domain, key prefix) compared with the database."""

    storage: MogileFSStorage
    fields: list[str]
    referenced: set[str]
    stored: set[str] = field(default_factory=set)
    staging: list[str] = field(default_factory=list)

    @property
    def orphans(self) -> list[str]:
        return sorted(self.stored - self.referenced)

    @property
    def missing(self) -> list[str]:
        return sorted(self.referenced - self.stored)


class Command(BaseCommand):
    help = (
        "Compare the keys stored under each MogileFS storage's key prefix with the "
        "FileField values in the database: orphans (stored, referred to by no row) and "
        "missing files (a row refers to a key that is not stored). Prints counts and a "
        "sample; --list prints all. --delete-orphans deletes orphans and uploads that a "
        "killed save left in the staging directory, once they are older than --grace "
        "seconds (so an upload in progress is never removed), after confirmation. Exits 1 "
        "when a row refers to a missing file."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--list", action="store_true", help="list every orphan and missing file"
        )
        parser.add_argument(
            "--delete-orphans",
            action="store_true",
            help="delete orphans (and stale staging uploads) older than --grace",
        )
        parser.add_argument(
            "--grace",
            type=int,
            default=DEFAULT_GRACE,
            help=f"seconds a key must be old to be deleted (default {DEFAULT_GRACE})",
        )
        parser.add_argument(
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help="delete without asking for confirmation",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        audits = referenced_names()
        if not audits:
            raise CommandError("No model FileField stores in MogileFS: nothing to audit.")
        missing = 0
        for storage, (fields, referenced) in audits.items():
            audit = Audit(storage, fields, referenced)
            self._list_keys(audit)
            self._report(audit, options["list"])
            missing += len(audit.missing)
            if options["delete_orphans"]:
                self._delete(audit, options["grace"], options["interactive"])
        if missing:
            raise CommandError(f"{missing} row(s) refer to files that are not stored.")

    def _list_keys(self, audit: Audit) -> None:
        prefix = audit.storage.key_prefix
        staging = f"{prefix}{STAGING_DIR}/"
        keys = audit.storage.client.iter_keys(prefix or None)
        for key in tqdm(
            keys, desc=f"keys in {audit.storage.domain}", unit=" keys", file=self.stderr
        ):
            if key.startswith(staging):
                audit.staging.append(key)
            else:
                audit.stored.add(key[len(prefix) :])

    def _report(self, audit: Audit, everything: bool) -> None:
        storage = audit.storage
        where = f"domain {storage.domain}, key prefix {storage.key_prefix!r}"
        self.stdout.write(self.style.MIGRATE_HEADING(f"{where} ({', '.join(audit.fields)})"))
        self.stdout.write(
            f"  {len(audit.stored)} stored, {len(audit.referenced)} referred to, "
            f"{len(audit.orphans)} orphans, {len(audit.missing)} missing, "
            f"{len(audit.staging)} staging uploads"
        )
        for title, names in (("orphans", audit.orphans), ("missing", audit.missing)):
            shown = names if everything else names[:SAMPLE]
            if shown:
                more = "" if len(shown) == len(names) else f" (first {len(shown)}; --list for all)"
                self.stdout.write(f"  {title}{more}:")
                for name in shown:
                    self.stdout.write(f"    {name}")

    def _delete(self, audit: Audit, grace: int, interactive: bool) -> None:
        storage = audit.storage
        candidates = [storage.key_prefix + name for name in audit.orphans]
        candidates += [key for key in audit.staging if _staged_before(key, time.time() - grace)]
        old = [key for key in candidates if self._older_than(storage, key, grace)]
        if not old:
            self.stdout.write(f"  nothing older than {grace} s to delete")
            return
        if interactive:
            answer = input(f"Delete {len(old)} key(s) from domain {storage.domain}? [yes/no] ")
            if answer.strip().lower() != "yes":
                raise CommandError("Deletion cancelled: nothing was deleted.")
        deleted = 0
        for key in tqdm(old, desc="deleting", unit=" keys", file=self.stderr):
            try:
                storage.client.delete(key)
                deleted += 1
            except UnknownKeyError:
                pass  # gone meanwhile
        self.stdout.write(f"  deleted {deleted} key(s)")

    def _older_than(self, storage: MogileFSStorage, key: str, grace: int) -> bool:
        """Whether the stored file was last written more than ``grace`` seconds ago."""
        try:
            modified = storage.client.stat(key).last_modified
        except MogileFSError as exc:
            self.stderr.write(f"  {key}: age unknown ({exc}); kept")
            return False
        if modified is None:
            return False
        age = datetime.now(timezone.utc) - modified
        return age.total_seconds() > grace


def _staged_before(key: str, moment: float) -> bool:
    """Whether a staging key (``<unix time>-<random>``) was started before ``moment``."""
    started, _, _ = key.rpartition("/")[2].partition("-")
    return started.isdigit() and int(started) < moment

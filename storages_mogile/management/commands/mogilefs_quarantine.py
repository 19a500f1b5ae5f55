"""``manage.py mogilefs_quarantine``: list, restore and purge the orphans the audit moved."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from storages_mogile.clusters import KeySpace, key_spaces
from storages_mogile.quarantine import (
    PREFIX,
    Entry,
    Quarantine,
    RestoreRefusedError,
    retention,
)


class Command(BaseCommand):
    help = (
        f"The quarantine ({PREFIX}<unix time>/<original key>, at the root of each domain "
        "the project's storages use), where mogilefs_audit --delete-orphans moves "
        "orphans. 'list' shows what is there; 'restore KEY ...' moves files back to their "
        "keys (refused when a key exists again); 'purge' deletes, for good, what has been "
        "there longer than MOGILEFS_QUARANTINE_RETENTION seconds (30 days by default)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        listing = actions.add_parser("list", help="list the quarantined files")
        listing.add_argument("--older-than", type=int, default=0, help="only these (seconds)")
        restore = actions.add_parser("restore", help="move quarantined files back")
        restore.add_argument(
            "keys",
            nargs="*",
            help="original keys (the latest move of each) or quarantine keys, as listed",
        )
        restore.add_argument("--all", action="store_true", help="restore every quarantined file")
        purge = actions.add_parser("purge", help="delete quarantined files for good")
        purge.add_argument(
            "--older-than",
            type=int,
            default=None,
            help="seconds in the quarantine (default and least: the retention period)",
        )
        purge.add_argument(
            "--force", action="store_true", help="allow --older-than below the retention"
        )
        purge.add_argument(
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help="purge without asking for confirmation",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            kept = retention()
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        quarantines = list(_quarantines())
        if not quarantines:
            raise CommandError("No storage of the project reaches a MogileFS cluster.")
        action = options["action"]
        if action == "list":
            self._list(quarantines, options["older_than"], kept)
        elif action == "restore":
            self._restore(quarantines, options["keys"], options["all"])
        else:
            self._purge(quarantines, options, kept)

    def _list(self, quarantines: list[tuple[str, Quarantine]], older: int, kept: int) -> None:
        now = time.time()
        for where, quarantine in quarantines:
            self.stdout.write(self.style.MIGRATE_HEADING(where))
            count = 0
            for entry in quarantine.entries():
                if entry.age(now) >= older:
                    count += 1
                    moved = datetime.fromtimestamp(entry.moved_at, timezone.utc)
                    purgeable = " (past retention)" if entry.age(now) >= kept else ""
                    self.stdout.write(
                        f"  {moved:%Y-%m-%d %H:%M:%S} UTC  {entry.original}  "
                        f"as {entry.key}{purgeable}"
                    )
            self.stdout.write(f"  {count} quarantined file(s)")

    def _restore(
        self, quarantines: list[tuple[str, Quarantine]], keys: list[str], everything: bool
    ) -> None:
        if bool(keys) == everything:
            raise CommandError("Name the keys to restore, or give --all (not both).")
        wanted = set(keys)
        restored, refused = 0, []
        for _, quarantine in quarantines:
            for entry in _chosen(quarantine, wanted, everything):
                try:
                    quarantine.restore(entry)
                except RestoreRefusedError as exc:
                    refused.append(str(exc))
                    continue
                self.stdout.write(f"  restored {entry.original}")
                restored += 1
        self.stdout.write(f"restored {restored} file(s)")
        for reason in refused:
            self.stderr.write(f"  refused: {reason}")
        if not everything and wanted:
            self.stderr.write(f"  not in the quarantine: {', '.join(sorted(wanted))}")
        if refused or (wanted and not everything):
            raise CommandError(f"{len(refused) + len(wanted)} key(s) not restored (listed above).")

    def _purge(
        self, quarantines: list[tuple[str, Quarantine]], options: dict[str, Any], kept: int
    ) -> None:
        older = kept if options["older_than"] is None else options["older_than"]
        if older < kept and not options["force"]:
            raise CommandError(
                f"--older-than {older} is below the retention period ({kept} s, "
                "MOGILEFS_QUARANTINE_RETENTION): give --force to purge younger files."
            )
        if options["interactive"]:
            answer = input(f"Delete, for good, quarantined files older than {older} s? [yes/no] ")
            if answer.strip().lower() != "yes":
                raise CommandError("Cancelled: nothing was deleted.")
        now = time.time()
        purged = 0
        for _, quarantine in quarantines:
            for entry in list(quarantine.entries()):
                if entry.age(now) >= older:
                    quarantine.purge(entry)
                    purged += 1
        self.stdout.write(f"purged {purged} file(s)")


def _quarantines() -> Iterator[tuple[str, Quarantine]]:
    """The quarantine of each cluster the project's storages reach, with a description."""
    first: dict[int, KeySpace] = {}
    for space in key_spaces():
        first.setdefault(space.cluster, space)
    for space in first.values():
        storage = space.storage
        where = f"domain {storage.domain} on {', '.join(storage._trackers)}"
        yield where, Quarantine(storage.client)


def _chosen(quarantine: Quarantine, wanted: set[str], everything: bool) -> Iterator[Entry]:
    """The entries to restore: those named by their quarantine key, and the latest move
    of each original key named (of every one, with ``everything``).

    Names found are removed from ``wanted``.
    """
    latest: dict[str, Entry] = {}
    for entry in quarantine.entries():
        if entry.key in wanted:
            wanted.discard(entry.key)
            yield entry
        elif everything or entry.original in wanted:
            previous = latest.get(entry.original)
            if previous is None or entry.moved_at >= previous.moved_at:
                latest[entry.original] = entry
    for original, entry in latest.items():
        wanted.discard(original)
        yield entry

"""``manage.py mogilefs_audit``: stored files no row refers to, and rows whose file is gone."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from storages_mogile.audit import ClusterAudit, Kind, project_audits
from storages_mogile.client import Client, MogileFSError, UnknownKeyError
from storages_mogile.digits import parse_digits
from storages_mogile.quarantine import PREFIX, NotMovedError, Quarantine, StrandedError

SAMPLE = 10
DEFAULT_GRACE = 24 * 3600
LISTED = (Kind.ORPHAN, Kind.STAGING, Kind.KEPT)
MISSING_LOOKS = 4  # looks at a key the listing did not meet, MISSING_PAUSE s apart
MISSING_PAUSE = 0.2


@dataclass
class Survey:
    """What one listing of a cluster's keys found."""

    counts: Counter[Kind] = field(default_factory=Counter)
    #: referenced keys found stored (the rest are missing)
    seen: set[str] = field(default_factory=set)


class Command(BaseCommand):
    help = (
        "Compare the keys stored in each MogileFS cluster the model FileFields use with "
        "the names their rows hold (all rows, also those a default manager hides): "
        "orphans (stored under a field's key prefix, referred to by no row) and missing "
        "files (a row refers to a key that is not stored). Keys in the key space of a "
        "storage no model field uses are kept, never orphans. --delete-orphans moves "
        "orphans, and uploads a killed save left in a staging directory, into the "
        f"quarantine ({PREFIX}; see mogilefs_quarantine) once they are older than "
        "--grace seconds, after confirmation; each key is checked again just before it "
        "moves. --verify-checksums reads every copy of each referred-to file of a "
        "hash-typed class and lists those that differ from the recorded MD5. Exits 1 when "
        "a row refers to a missing file or a copy is damaged."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--list", action="store_true", help="list every orphan, kept and missing key"
        )
        parser.add_argument(
            "--delete-orphans",
            action="store_true",
            help="move orphans (and stale staging uploads) older than --grace to the quarantine",
        )
        parser.add_argument(
            "--grace",
            type=int,
            default=DEFAULT_GRACE,
            help=f"seconds a key must be old to be moved (default {DEFAULT_GRACE})",
        )
        parser.add_argument(
            "--verify-checksums",
            action="store_true",
            help="read every copy of each referred-to file of a hash-typed class and list "
            "the copies that differ from the recorded MD5",
        )
        parser.add_argument(
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help="move without asking for confirmation",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["grace"] < 0:
            raise CommandError(f"--grace must be 0 or more seconds, not {options['grace']}.")
        audits = project_audits()
        if not audits:
            raise CommandError("No model FileField stores in MogileFS: nothing to audit.")
        missing = stranded = damaged = 0
        for audit in audits:
            audit.read_rows()
            self.stdout.write(self.style.MIGRATE_HEADING(audit.describe()))
            survey = self._survey(audit, options["list"])
            missing += self._report_missing(audit, survey, options["list"])
            if options["verify_checksums"]:
                damaged += self._report_damaged(audit.client, survey.seen)
            movable = survey.counts[Kind.ORPHAN] + survey.counts[Kind.STAGING]
            if options["delete_orphans"] and movable:
                stranded += self._quarantine(audit, options["grace"], options["interactive"])
        problems = []
        if missing:
            problems.append(f"{missing} row(s) refer to files that are not stored")
        if damaged:
            problems.append(f"{damaged} damaged copies (`mogadm fsck start` replaces them)")
        if stranded:
            problems.append(
                f"{stranded} file(s) moved by mistake could not be put back (restore them "
                "with mogilefs_quarantine restore)"
            )
        if problems:
            raise CommandError("; ".join(problems) + "; listed above.")

    def _survey(self, audit: ClusterAudit, everything: bool) -> Survey:
        """List the cluster's keys once, printing orphans and kept keys as they are found."""
        survey = Survey()
        keys = tqdm(audit.keys(), desc="keys", unit=" keys", file=self.stderr)
        for key in keys:
            kind, where = audit.classify(key)
            survey.counts[kind] += 1
            if kind is Kind.REFERENCED:
                survey.seen.add(key)
            elif kind in LISTED and (everything or survey.counts[kind] <= SAMPLE):
                because = f" ({where})" if where else ""
                self.stdout.write(f"  {kind.name.lower()}: {key}{because}")
        counts = survey.counts
        self.stdout.write(
            f"  {counts.total()} stored: "
            + ", ".join(f"{counts[kind]} {kind.value}" for kind in Kind)
        )
        if not everything and any(counts[kind] > SAMPLE for kind in LISTED):
            self.stdout.write(f"  (at most {SAMPLE} of each listed; --list for all)")
        return survey

    def _report_missing(self, audit: ClusterAudit, survey: Survey, everything: bool) -> int:
        """Print the rows whose key is not stored (or whose name is refused); their count."""
        unseen = [key for key in audit.referenced if key not in survey.seen]
        lines = [
            f"  missing: {key} ({audit.referenced[key]})" for key in _gone(audit.client, unseen)
        ]
        lines += [f"  refused name: {name!r} ({label})" for label, name in audit.refused]
        self.stdout.write(f"  {len(lines)} missing")
        for line in lines if everything else lines[:SAMPLE]:
            self.stdout.write(line)
        return len(lines)

    def _report_damaged(self, client: Client, keys: set[str]) -> int:
        """Print the copies of ``keys`` that differ from their recorded MD5; their count."""
        damaged = 0
        for key in tqdm(sorted(keys), desc="checksums", unit=" files", file=self.stderr):
            try:
                urls = client.damaged_copies(key)
            except UnknownKeyError:
                continue  # deleted meanwhile
            for url in urls:
                self.stdout.write(f"  damaged copy: {key} at {url}")
            damaged += len(urls)
        self.stdout.write(f"  {damaged} damaged copies")
        return damaged

    def _quarantine(self, audit: ClusterAudit, grace: int, interactive: bool) -> int:
        """Move the orphans and stale staging uploads older than ``grace``; the stranded."""
        if interactive:
            answer = input(
                f"Move the orphans and staging uploads older than {grace} s into the "
                f"quarantine ({PREFIX})? [yes/no] "
            )
            if answer.strip().lower() != "yes":
                raise CommandError("Cancelled: nothing was moved.")
        quarantine = Quarantine(audit.client)
        moved = kept = stranded = 0
        for key in tqdm(audit.keys(), desc="moving", unit=" keys", file=self.stderr):
            kind, _ = audit.classify(key)
            if kind not in (Kind.ORPHAN, Kind.STAGING):
                continue
            if kind is Kind.STAGING and not _staged_before(key, time.time() - grace):
                continue
            fid = self._old_fid(audit.client, key, grace)
            if fid is None:
                continue
            try:
                quarantine.move(key, fid, partial(audit.refers_to, key))
                moved += 1
            except StrandedError as exc:
                self.stderr.write(self.style.ERROR(f"  {exc}"))
                stranded += 1
            except NotMovedError as exc:
                self.stderr.write(f"  {exc}")
                kept += 1
        self.stdout.write(f"  moved {moved} key(s) into the quarantine; {kept} kept")
        return stranded

    def _old_fid(self, client: Client, key: str, grace: int) -> int | None:
        """The fid under ``key`` if it was last written more than ``grace`` seconds ago."""
        try:
            info = client.file_info(key)
            paths = client.get_paths(key, noverify=True, pathcount=max(info.devcount, 1))
        except UnknownKeyError:
            return None  # gone meanwhile
        except MogileFSError as exc:
            self.stderr.write(f"  {key}: age unknown ({exc}); kept")
            return None
        written = _written(client, paths)
        if written is None:
            self.stderr.write(f"  {key}: age unknown (no copy told its date); kept")
            return None
        age = datetime.now(timezone.utc) - written
        return info.fid if age.total_seconds() > grace else None


def _written(client: Client, paths: list[str]) -> datetime | None:
    """When the file at ``paths`` was written: its oldest copy's Last-Modified.

    A copy is dated when it was made, and a replica is made after the
    upload, minutes later when replication lags: a file dated by a young
    replica would be taken for a new one and kept past its grace. A copy on
    a wary node (one that failed without an answer) is asked only when no
    other told a date: a copy left out can only make the file younger.
    """
    dates: list[datetime] = []
    for url in client.nodes.order(paths):
        if dates and client.nodes.wary(url):
            # A hung node's probe restarts as each request to it gives up,
            # so one file after another would each wait its timeout.
            continue
        try:
            modified = client.nodes.head(url).last_modified
        except MogileFSError:
            continue  # that node is down: the other copies tell
        if modified is not None:
            dates.append(modified)
    return min(dates, default=None)


def _gone(client: Client, keys: list[str]) -> list[str]:
    """The keys that stay unknown when asked for again, a few times.

    A real tracker deletes a key's file before it records the new one when
    a file is saved again under its key (about 10 ms in which the key is
    unknown), so a listing, or one look, can miss a key being saved.
    """
    for look in range(MISSING_LOOKS):
        if look:
            time.sleep(MISSING_PAUSE)
        keys = [key for key in keys if not _stored(client, key)]
        if not keys:
            break
    return keys


def _stored(client: Client, key: str) -> bool:
    try:
        client.file_info(key)
    except UnknownKeyError:
        return False
    return True


def _staged_before(key: str, moment: float) -> bool:
    """Whether a staging key (``<unix time>-<random>``) was started before ``moment``."""
    started, _, _ = key.rpartition("/")[2].partition("-")
    seconds = parse_digits(started)
    return seconds is not None and seconds < moment

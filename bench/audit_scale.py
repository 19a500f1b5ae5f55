"""mogilefs_audit over 100,000 stored keys on the dev MogileFS: keys/s and memory.

The audit streams the stored keys and holds only the referenced ones, so its
memory must follow the number of rows' names, not of stored keys. Each round
audits one key prefix side by side with the baseline, the bare listing of
the same keys (``Client.iter_keys``, counted), each in a fresh process
(Django set up the same way in both), and reports keys/s, the ratio, and
each process's peak RSS (``VmHWM``):

* 20,000 stored keys, 10,000 of them referred to by rows;
* 100,000 stored keys, the same 10,000 referred to (80,000 more orphans);
* 100,000 stored keys, 50,000 referred to (memory follows the rows).

Storing 100,000 files through the client runs at about 180 keys/s on the
2-core development machine (9 minutes), so the keys are registered directly
in the dev tracker's metadata (rows of the ``file`` table of its
``metadata.sqlite3``, no bytes on the storage nodes): a report-only audit
asks the tracker for nothing but ``list_keys``. Moving orphans into the
quarantine needs real files (their age comes from the storage node), so the
last round stores ``--moves`` orphans through the client and times
``--delete-orphans --grace 0`` on them.

    .venv/bin/python bench/audit_scale.py [--stored 100000] [--small 20000]
        [--referenced 10000] [--more-referenced 50000] [--moves 300]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import django
from django.conf import settings
from harness import MIB, DevServer  # puts the repo on sys.path

DOMAIN = "bench"
PREFIX = "s/"
MOVES = "m/"
RUNS = ("listing", "audit", "move")
FIRST_FID = 1_000_000_000  # far above the fids the dev tracker hands out


def configure(database: Path, tracker: str, prefix: str) -> None:
    """Django with the rows in ``database`` and ContractDocument's files on the dev MogileFS."""
    storage = {"domain": DOMAIN, "trackers": [tracker], "key_prefix": prefix}
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "storages_mogile.testing",
            "storages_mogile",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(database)}},
        STORAGES={
            "default": {
                "BACKEND": "storages_mogile.backends.mogile.MogileFSStorage",
                "OPTIONS": storage,
            },
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
        USE_TZ=True,
        MEDIA_URL="/media/",
    )
    django.setup()


def register(data_dir: Path, keys: list[str], first_fid: int) -> None:
    """Register keys in the dev tracker's metadata (one-byte files with no copy)."""
    from storages_mogile.devserver.metadata import to_bytes

    with _metadata(data_dir) as db:
        (dmid,) = db.execute(
            "SELECT dmid FROM domain WHERE namespace = ?", (to_bytes(DOMAIN),)
        ).fetchone()
        db.executemany(
            "INSERT INTO file (fid, dmid, dkey, length, classid, devcount) "
            "VALUES (?, ?, ?, 1, 0, 1)",
            ((first_fid + index, dmid, to_bytes(key)) for index, key in enumerate(keys)),
        )


def unregister(data_dir: Path, keys: list[str]) -> None:
    """Take registered keys out of the dev tracker's metadata again."""
    from storages_mogile.devserver.metadata import to_bytes

    with _metadata(data_dir) as db:
        (dmid,) = db.execute(
            "SELECT dmid FROM domain WHERE namespace = ?", (to_bytes(DOMAIN),)
        ).fetchone()
        db.executemany(
            "DELETE FROM file WHERE dmid = ? AND dkey = ?",
            ((dmid, to_bytes(key)) for key in keys),
        )


def _metadata(data_dir: Path) -> sqlite3.Connection:
    from storages_mogile.devserver.cluster import METADATA_FILE

    return sqlite3.connect(data_dir / METADATA_FILE, timeout=60)


def refer(names: list[str]) -> None:
    """Rows referring to ``names`` (and only those)."""
    from storages_mogile.testing.models import ContractDocument

    ContractDocument.objects.all().delete()
    ContractDocument.objects.bulk_create(
        (ContractDocument(attachment=name) for name in names), batch_size=5000
    )


def audit(*args: str) -> None:
    """``manage.py mogilefs_audit`` with its output thrown away."""
    from django.core.management import CommandError, call_command

    with open(os.devnull, "w") as out:
        try:
            call_command("mogilefs_audit", *args, stdout=out, stderr=out)
        except CommandError as exc:
            raise SystemExit(f"the audit failed: {exc}") from exc


def listing(prefix: str) -> None:
    """The baseline: every key under ``prefix``, listed and counted."""
    from django.core.files.storage import default_storage

    sum(1 for _ in default_storage.client.iter_keys(prefix))


def child(run: str, database: Path, tracker: str, prefix: str) -> None:
    """In a fresh process: one run, then its seconds and peak RSS (KiB) on stdout."""
    configure(database, tracker, prefix)
    from django.core.files.storage import default_storage

    default_storage.client.list_keys(prefix, limit=1)  # connected before the clock starts
    began = time.perf_counter()
    if run == "listing":
        listing(prefix)
    elif run == "audit":
        audit()
    else:
        audit("--delete-orphans", "--no-input", "--grace", "0")
    seconds = time.perf_counter() - began
    print(seconds, peak_rss_kib())


def peak_rss_kib() -> int:
    """This process's peak RSS (VmHWM; ru_maxrss would count the parent's from before exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise SystemExit("no VmHWM in /proc/self/status")


def measured(run: str, database: Path, tracker: str, prefix: str, keys: int) -> tuple[float, float]:
    """One run in a fresh process: keys/s, peak RSS in MiB."""
    args = ["--child", run, "--db", str(database), "--tracker", tracker, "--prefix", prefix]
    done = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    seconds, kib = done.stdout.split()
    return keys / float(seconds), int(kib) * 1024 / MIB


def doc(index: int) -> str:
    return f"doc/{index:07d}.txt"


def orphan(index: int) -> str:
    return f"orphan/{index:07d}.bin"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--referenced", type=int, default=10_000)
    parser.add_argument("--more-referenced", type=int, default=50_000)
    parser.add_argument("--moves", type=int, default=300)
    parser.add_argument("--child", choices=RUNS, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tracker", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default=PREFIX, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child, options.db, options.tracker, options.prefix)
        return
    with tempfile.TemporaryDirectory(dir="/dev/shm") as name:
        data = Path(name)
        server = DevServer.start(data, DOMAIN, {"one": 1})
        try:
            results, moves = rounds(data, server.tracker, options)
        finally:
            server.stop()
    print()
    print("| stored keys | referred to | listing keys/s | audit keys/s | ratio "
          "| listing peak RSS | audit peak RSS |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for keys_stored, refs, listed, listing_mib, audited, audit_mib in results:
        print(
            f"| {keys_stored:,} | {refs:,} | {listed:,.0f} | {audited:,.0f} | "
            f"{audited / listed:.2f} | {listing_mib:.1f} MiB | {audit_mib:.1f} MiB |"
        )
    print(
        f"\nquarantine: {options.moves} orphans moved (100 referred to, kept): {moves:.0f} keys/s"
    )


def rounds(data: Path, tracker: str, options: argparse.Namespace) -> tuple[list, float]:
    """The three rounds over the prefix, then the quarantine round."""
    database = data / "rows.sqlite3"
    configure(database, tracker, PREFIX)
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)
    small, stored = options.small, options.stored
    few, many = options.referenced, options.more_referenced
    began = time.perf_counter()
    keys = [f"{PREFIX}{doc(i)}" for i in range(few)]
    keys += [f"{PREFIX}{orphan(i)}" for i in range(small - few)]
    register(data, keys, FIRST_FID)
    print(f"registered {len(keys)} keys in {time.perf_counter() - began:.1f} s")
    more = [f"{PREFIX}{orphan(i)}" for i in range(small - few, stored - few)]
    results = [one_round(database, tracker, small, few)]
    register(data, more, FIRST_FID + small)
    results.append(one_round(database, tracker, stored, few))
    # Rows now refer to more keys; as many orphans go, so the stored count stays.
    unregister(data, more[: many - few])
    register(data, [f"{PREFIX}{doc(i)}" for i in range(few, many)], FIRST_FID + stored)
    results.append(one_round(database, tracker, stored, many))
    return results, move_round(database, tracker, options.moves)


def one_round(
    database: Path, tracker: str, stored: int, referenced: int
) -> tuple[int, int, float, float, float, float]:
    """The bare listing and the audit of ``stored`` keys, ``referenced`` of them by rows."""
    refer([doc(index) for index in range(referenced)])
    listed, listing_mib = measured("listing", database, tracker, PREFIX, stored)
    audited, audit_mib = measured("audit", database, tracker, PREFIX, stored)
    print(f"{stored} keys, {referenced} referred to: listing {listed:.0f} keys/s "
          f"{listing_mib:.1f} MiB, audit {audited:.0f} keys/s {audit_mib:.1f} MiB")  # fmt: skip
    return stored, referenced, listed, listing_mib, audited, audit_mib


def move_round(database: Path, tracker: str, count: int) -> float:
    """``count`` orphans stored through the client (and 100 referred to) under a prefix of
    their own, moved by ``--delete-orphans --grace 0``: keys/s."""
    from django.core.files.base import ContentFile

    from storages_mogile.backends.mogile import MogileFSStorage

    storage = MogileFSStorage(domain=DOMAIN, trackers=[tracker], key_prefix=MOVES)
    refer([storage.save(f"kept/{index}.txt", ContentFile(b"k")) for index in range(100)])
    for index in range(count):
        storage.save(f"gone/{index}.txt", ContentFile(b"o"))
    time.sleep(1.1)  # older than --grace 0 by the node's Last-Modified (whole seconds)
    rate, _ = measured("move", database, tracker, MOVES, count + 100)
    moved = sum(1 for _ in storage.client.iter_keys(".storages-mogile-quarantine/"))
    if moved != count:
        raise SystemExit(f"moved {moved} of {count} orphans")
    return rate


if __name__ == "__main__":
    main()

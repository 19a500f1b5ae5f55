"""mogilefs_audit over 100,000 stored keys on the dev MogileFS: keys/s and memory.

The audit streams the stored keys and holds only the referenced ones, so its
memory must follow the number of rows' names, not of stored keys. Each round
audits one key prefix side by side with the baseline, the bare listing of
the same keys (``Client.iter_keys``, counted), and reports keys/s, the ratio,
and each run's peak RSS growth of this process (sampled every 2 ms):

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
import gc
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import django
from django.conf import settings
from harness import DevServer, PeakRSS  # puts the repo on sys.path

DOMAIN = "bench"
FIRST_FID = 1_000_000_000  # far above the fids the dev tracker hands out


def configure() -> None:
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "storages_mogile.testing",
            "storages_mogile",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True,
        MEDIA_URL="/media/",
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, verbosity=0)


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
        db.executemany("DELETE FROM file WHERE dkey = ?", ((to_bytes(key),) for key in keys))


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


def measured(operation: Callable[[], object], keys: int) -> tuple[float, float]:
    """Run ``operation`` over ``keys`` keys: keys/s, peak RSS growth in MiB."""
    gc.collect()
    began = time.perf_counter()
    with PeakRSS(os.getpid()) as probe:
        operation()
    return keys / (time.perf_counter() - began), probe.growth_mib


def audit(*args: str) -> None:
    """``manage.py mogilefs_audit`` with its output thrown away."""
    from django.core.management import CommandError, call_command

    with open(os.devnull, "w") as out:
        try:
            call_command("mogilefs_audit", *args, stdout=out, stderr=out)
        except CommandError as exc:
            raise SystemExit(f"the audit failed: {exc}") from exc


def listing(tracker: str, prefix: str) -> int:
    """The baseline: every key under ``prefix``, listed and counted."""
    from storages_mogile.client import Client

    with Client(DOMAIN, [tracker]) as client:
        return sum(1 for _ in client.iter_keys(prefix))


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
    options = parser.parse_args()
    configure()
    from storages_mogile.backends.mogile import MogileFSStorage
    from storages_mogile.testing.models import stored_on

    small, stored = options.small, options.stored
    few, many = options.referenced, options.more_referenced
    with tempfile.TemporaryDirectory(dir="/dev/shm") as name:
        data = Path(name)
        server = DevServer.start(data, DOMAIN, {"one": 1})
        try:
            storage = MogileFSStorage(domain=DOMAIN, trackers=[server.tracker], key_prefix="s/")
            began = time.perf_counter()
            keys = [f"s/{doc(i)}" for i in range(few)] + [
                f"s/{orphan(i)}" for i in range(small - few)
            ]
            register(data, keys, FIRST_FID)
            print(f"registered {len(keys)} keys in {time.perf_counter() - began:.1f} s")
            results = []
            with stored_on(storage):
                audit()  # warm up: imports, the first connections
                results.append(one_round(server.tracker, small, few))
                more = [f"s/{orphan(i)}" for i in range(small - few, stored - few)]
                register(data, more, FIRST_FID + small)
                results.append(one_round(server.tracker, stored, few))
                # Rows now refer to more keys; as many orphans go, the stored count stays.
                unregister(data, more[: many - few])
                register(data, [f"s/{doc(i)}" for i in range(few, many)], FIRST_FID + stored)
                results.append(one_round(server.tracker, stored, many))
            moves = move_round(server.tracker, options.moves)
        finally:
            server.stop()
    print()
    print("| stored keys | referred to | listing keys/s | audit keys/s | ratio "
          "| listing peak RSS growth | audit peak RSS growth |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for keys_stored, refs, listed, listing_mib, audited, audit_mib in results:
        print(
            f"| {keys_stored:,} | {refs:,} | {listed:,.0f} | {audited:,.0f} | "
            f"{audited / listed:.2f} | {listing_mib:.1f} MiB | {audit_mib:.1f} MiB |"
        )
    print(
        f"\nquarantine: {options.moves} orphans (and 100 kept) audited and moved: {moves:.0f} keys/s"
    )


def one_round(
    tracker: str, stored: int, referenced: int
) -> tuple[int, int, float, float, float, float]:
    """The bare listing and the audit of ``stored`` keys, ``referenced`` of them by rows."""
    refer([doc(index) for index in range(referenced)])
    listed = listing(tracker, "s/")
    if listed != stored:
        raise SystemExit(f"{listed} keys stored, not {stored}")
    listed_rate, listing_mib = measured(lambda: listing(tracker, "s/"), stored)
    audited_rate, audit_mib = measured(audit, stored)
    print(
        f"{stored} keys, {referenced} referred to: audit {audited_rate:.0f} keys/s, {audit_mib:.1f} MiB"
    )
    return stored, referenced, listed_rate, listing_mib, audited_rate, audit_mib


def move_round(tracker: str, count: int) -> float:
    """Orphans stored through the client, moved by ``--delete-orphans``: keys/s."""
    from django.core.files.base import ContentFile

    from storages_mogile.backends.mogile import MogileFSStorage
    from storages_mogile.testing.models import stored_on

    storage = MogileFSStorage(domain=DOMAIN, trackers=[tracker], key_prefix="m/")
    refer([storage.save(f"kept/{index}.txt", ContentFile(b"k")) for index in range(100)])
    for index in range(count):
        storage.save(f"gone/{index}.txt", ContentFile(b"o"))
    time.sleep(1.1)  # older than --grace 0 by the node's Last-Modified (whole seconds)
    with stored_on(storage):
        rate, _ = measured(
            lambda: audit("--delete-orphans", "--no-input", "--grace", "0"), count + 100
        )
    moved = sum(1 for _ in storage.client.iter_keys(".storages-mogile-quarantine/"))
    if moved != count:
        raise SystemExit(f"moved {moved} of {count} orphans")
    return rate


if __name__ == "__main__":
    main()

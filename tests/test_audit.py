"""mogilefs_audit and mogilefs_quarantine, tried by every other owner of the key space.

Each test gets a key prefix of its own on the target MogileFS (dev or real);
the keys under it, and the quarantined keys that came from it, are deleted
afterwards.
"""

from __future__ import annotations

import io
import itertools
import json
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.db import connection, connections

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.client import Client
from storages_mogile.quarantine import NotMovedError, Quarantine, StrandedError
from tests import site_process
from tests.client.test_checksums import with_a_damaged_copy
from tests.conftest import Target, skip_on_real_mogilefs
from tests.testapp.models import records_on

QUARANTINE = ".storages-mogile-quarantine/"

pytestmark = pytest.mark.django_db


@dataclass
class Run:
    """What one command run printed, and the error it exited 1 with."""

    out: str
    err: str
    error: CommandError | None = None


def command(*args: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except CommandError as exc:
        return Run(out.getvalue(), err.getvalue(), exc)
    return Run(out.getvalue(), err.getvalue())


def quarantine_orphans(*args: str) -> Run:
    return command("mogilefs_audit", "--delete-orphans", "--no-input", "--grace", "0", *args)


@pytest.fixture
def prefix(mogile_target: Target) -> Iterator[str]:
    """A key prefix of the test's own; its keys (quarantined ones too) are deleted afterwards."""
    prefix = f"audit-{uuid.uuid4().hex[:10]}/"
    yield prefix
    with Client(mogile_target.domain, mogile_target.trackers) as client:
        for key in list(client.iter_keys(prefix)):
            client.delete(key)
        for key in list(client.iter_keys(QUARANTINE)):
            if key.split("/", 2)[2].startswith(prefix):
                client.delete(key)


def storage_at(target: Target, prefix: str, **options: object) -> MogileFSStorage:
    return MogileFSStorage(
        domain=target.domain, trackers=target.trackers, key_prefix=prefix, **options
    )


def quarantined(client: Client, prefix: str) -> dict[str, str]:
    """Original key -> quarantine key, for the keys under ``prefix``."""
    found = {}
    for key in client.iter_keys(QUARANTINE):
        original = key.split("/", 2)[2]
        if original.startswith(prefix):
            found[original] = key
    return found


def orphan(storage: MogileFSStorage, name: str, data: bytes = b"orphan") -> str:
    """A file no row refers to; its name."""
    return storage.save(name, ContentFile(data))


def read(storage: MogileFSStorage, name: str) -> bytes:
    with storage.open(name, "rb") as stream:
        return stream.read()


# -- who else names the keys ------------------------------------------------------


def test_a_nested_key_prefix_is_part_of_the_outer_key_space(mogile_target, prefix) -> None:
    """The docs' private files: a storage with prefix P and a signed one with P + private/."""
    public = storage_at(mogile_target, prefix)
    private = storage_at(mogile_target, f"{prefix}private/", signed_urls=True)
    with records_on(public, private) as model:
        model.objects.create(public=ContentFile(b"pub", name="a.txt"))
        secret = model.objects.create(private=ContentFile(b"secret", name="secret.txt"))
        lost = orphan(public, "lost.txt")
        run = quarantine_orphans()
    assert run.error is None, run.err
    assert read(private, secret.private.name) == b"secret"
    assert not public.exists(lost)
    assert list(quarantined(public.client, prefix)) == [f"{prefix}{lost}"]
    assert "1 orphans" in run.out and "0 missing" in run.out


def test_a_name_spelled_otherwise_refers_to_the_key_the_storage_reads(
    mogile_target, prefix
) -> None:
    storage = storage_at(mogile_target, prefix)
    with records_on(storage) as model:
        stored = orphan(storage, "docs/a.txt", b"doc")
        model.objects.create(public="docs//a.txt", private="./docs/a.txt")
        run = quarantine_orphans()
    assert run.error is None, run.err
    assert read(storage, stored) == b"doc"
    assert "0 orphans" in run.out and "0 missing" in run.out


def test_rows_hidden_by_the_default_manager_keep_their_files(mogile_target, prefix) -> None:
    storage = storage_at(mogile_target, prefix)
    with records_on(storage) as model:
        hidden = model.objects.create(public=ContentFile(b"kept", name="deleted.txt"))
        model.objects.filter(pk=hidden.pk).update(deleted=True)
        assert not model.objects.exists()  # the default manager hides it
        run = quarantine_orphans()
    assert run.error is None, run.err
    assert read(storage, hidden.public.name) == b"kept"


def test_one_cluster_spelled_two_ways_is_audited_as_one(mogile_target, prefix) -> None:
    """``[t1, t2]`` on one field and ``[t1]`` (localhost for 127.0.0.1) on the other."""
    first = mogile_target.trackers[0]
    other = first.replace("127.0.0.1", "localhost")
    assert other != first, "the trackers are expected on 127.0.0.1"
    wide = storage_at(mogile_target, prefix)
    narrow = MogileFSStorage(domain=mogile_target.domain, trackers=[other], key_prefix=prefix)
    with records_on(wide, narrow) as model:
        row = model.objects.create(
            public=ContentFile(b"one", name="one.txt"), private=ContentFile(b"two", name="two.txt")
        )
        run = quarantine_orphans()
    assert run.error is None, run.err
    assert read(wide, row.public.name) == b"one" and read(wide, row.private.name) == b"two"
    assert run.out.count("stored:") == 1  # one cluster, listed once


def test_keys_of_a_storage_no_field_uses_are_kept_and_reported_apart(
    settings, mogile_target, prefix
) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "storages_mogile.backends.mogile.MogileFSStorage",
            "OPTIONS": {
                "domain": mogile_target.domain,
                "trackers": mogile_target.trackers,
                "key_prefix": f"{prefix}exports/",
            },
        },
    }
    storage = storage_at(mogile_target, prefix)
    with records_on(storage) as model:
        model.objects.create(public=ContentFile(b"row", name="row.txt"))
        report = orphan(storage, "exports/report.csv", b"made by code")
        run = quarantine_orphans("--list")
    assert run.error is None, run.err
    assert read(storage, report) == b"made by code"
    assert f"kept: {prefix}{report} (STORAGES['exports'])" in run.out
    assert "0 orphans" in run.out


# -- moving only what is still an orphan ---------------------------------------------


def test_what_changes_while_the_prompt_waits_is_checked_again(
    mogile_target, prefix, monkeypatch
) -> None:
    storage = storage_at(mogile_target, prefix)
    overwriting = storage_at(mogile_target, prefix, file_overwrite=True)
    with records_on(storage) as model:
        adopted = orphan(storage, "adopted.txt", b"old")
        saved_again = orphan(storage, "saved-again.txt", b"old")
        replaced = orphan(storage, "replaced.txt", b"old")
        still = orphan(storage, "still.txt", b"old")
        time.sleep(3.1)  # older than --grace 2 (Last-Modified counts whole seconds)

        def meanwhile(prompt: str) -> str:
            model.objects.create(public=adopted)
            overwriting.save(saved_again, ContentFile(b"new and referenced"))
            model.objects.create(public=saved_again)
            overwriting.save(replaced, ContentFile(b"new"))
            return "yes"

        monkeypatch.setattr("builtins.input", meanwhile)
        run = command("mogilefs_audit", "--delete-orphans", "--grace", "2")
    assert run.error is None, run.err
    assert read(storage, adopted) == b"old"
    assert read(storage, saved_again) == b"new and referenced"
    assert read(storage, replaced) == b"new"  # younger than the grace period now
    assert list(quarantined(storage.client, prefix)) == [f"{prefix}{still}"]


def test_nothing_moves_without_confirmation(mogile_target, prefix, monkeypatch) -> None:
    storage = storage_at(mogile_target, prefix)
    with records_on(storage):
        lost = orphan(storage, "orphan.txt")
        monkeypatch.setattr("builtins.input", lambda prompt: "no")
        run = command("mogilefs_audit", "--delete-orphans", "--grace", "0")
    assert run.error is not None and "nothing was moved" in str(run.error)
    assert storage.exists(lost)


def test_orphans_missing_files_staging_uploads_and_the_grace_period(mogile_target, prefix) -> None:
    storage = storage_at(mogile_target, prefix)
    with records_on(storage) as model:
        for index in range(3):
            model.objects.create(public=ContentFile(b"kept", name=f"kept-{index}.txt"))
        gone = model.objects.create(public=ContentFile(b"gone", name="gone.txt"))
        storage.client.delete(storage.key_for(gone.public.name))
        orphans = [orphan(storage, f"orphan-{index}.txt") for index in range(2)]
        staged = f"{prefix}.storages-mogile-staging/{int(time.time()) - 7200}-killed"
        storage.client.store_content(staged, b"left by a killed save")

        report = command("mogilefs_audit", "--list")
        assert report.error is not None and "1 row" in str(report.error)
        assert "2 orphans" in report.out and "1 staging uploads" in report.out
        assert "1 missing" in report.out and f"missing: {prefix}{gone.public.name}" in report.out
        assert all(f"orphan: {prefix}{name}" in report.out for name in orphans)

        # Just written: younger than the grace period, so kept even with --no-input.
        young = command("mogilefs_audit", "--delete-orphans", "--no-input", "--grace", "3600")
        assert "moved 0 key(s)" in young.out
        assert all(storage.exists(name) for name in orphans)
        assert storage.client.file_info(staged)

        moved = quarantine_orphans()
    assert "moved 3 key(s)" in moved.out
    assert not any(storage.exists(name) for name in orphans)
    assert sorted(quarantined(storage.client, prefix)) == sorted(
        [f"{prefix}{name}" for name in orphans] + [staged]
    )
    assert all(storage.exists(f"kept-{index}.txt") for index in range(3))


def test_an_orphan_replicated_late_is_as_old_as_its_upload(mogile_target, prefix) -> None:
    """Orphans past the grace period that got a second copy just now (late
    replication; here a class change, which the dev tracker replicates at
    once) are moved: a file's age is its oldest copy's, not a young replica's."""
    skip_on_real_mogilefs()  # mogilefsd leaves a changed class to fsck
    storage = storage_at(mogile_target, prefix, mogile_class="thumb")
    with records_on(storage):
        names = [orphan(storage, f"late-{index}.txt") for index in range(8)]
        time.sleep(2.1)
        for name in names:
            storage.client.update_class(storage.key_for(name), "avatar")
        deadline = time.monotonic() + 10
        while any(storage.client.file_info(storage.key_for(n)).devcount < 2 for n in names):
            assert time.monotonic() < deadline, "the dev tracker did not replicate"
            time.sleep(0.05)
        moved = quarantine_orphans("--grace", "2")
    assert "moved 8 key(s)" in moved.out, moved.out + moved.err


def test_orphans_with_a_copy_on_a_hung_node_are_dated_by_their_other_copy(dev_cluster) -> None:
    """A node hangs, holding one copy of each orphan: the other copy dates
    each file, and the hung node is asked once, not once per file (each
    request would wait the progress timeout: the node's probe, restarted
    as each request gives up, never looks hung to the next)."""
    target = Target(list(dev_cluster.trackers), "testdomain", real=False)
    storage = storage_at(target, "hung/", mogile_class="avatar", node_progress_timeout=1.0)
    hung = dev_cluster.nodes[1]
    with records_on(storage):
        names = [orphan(storage, f"hung-{index}.txt") for index in range(6)]
        deadline = time.monotonic() + 10
        while any(storage.client.file_info(storage.key_for(n)).devcount < 2 for n in names):
            assert time.monotonic() < deadline, "the dev tracker did not replicate"
            time.sleep(0.05)
        time.sleep(2.1)
        asked: list[str] = []
        head = storage.client.nodes.head

        def counted(url: str, **options: bool) -> object:
            asked.append(url)
            return head(url, **options)

        storage.client.nodes.head = counted  # type: ignore[method-assign]
        hung.hang()
        try:
            moved = quarantine_orphans("--grace", "2")
        finally:
            hung.resume()
    assert "moved 6 key(s)" in moved.out, moved.out + moved.err
    assert len([url for url in asked if url.startswith(hung.url + "/")]) == 1, asked


def test_a_key_whose_quarantine_key_would_be_too_long_is_reported_not_moved(
    mogile_target, prefix
) -> None:
    storage = storage_at(mogile_target, prefix)
    with records_on(storage):
        name = orphan(storage, "x" * (250 - len(prefix)) + ".txt")
        run = quarantine_orphans()
    assert storage.exists(name)
    assert "over MogileFS's 255" in run.err and "moved 0 key(s)" in run.out


# -- the quarantine ---------------------------------------------------------------


def test_quarantine_list_restore_and_purge(settings, mogile_target, prefix) -> None:
    storage = storage_at(mogile_target, prefix)
    with records_on(storage):
        first = orphan(storage, "first.txt", b"first")
        second = orphan(storage, "second.txt", b"second")
        fid = storage.client.file_info(storage.key_for(first)).fid
        quarantine_orphans()
        listing = command("mogilefs_quarantine", "list").out
        assert f"  {prefix}{first}  as {QUARANTINE}" in listing

        restored = command("mogilefs_quarantine", "restore", f"{prefix}{first}")
        assert restored.error is None and f"restored {prefix}{first}" in restored.out
        assert storage.client.file_info(storage.key_for(first)).fid == fid  # the same file
        assert read(storage, first) == b"first"

        storage.client.store_content(storage.key_for(second), b"a new file")
        refused = command("mogilefs_quarantine", "restore", f"{prefix}{second}")
        assert refused.error is not None and "exists again" in refused.err
        assert read(storage, second) == b"a new file"
        assert f"{prefix}{second}" in quarantined(storage.client, prefix)

        below = command("mogilefs_quarantine", "purge", "--older-than", "0", "--no-input")
        assert below.error is not None and "--force" in str(below.error)
        kept = command("mogilefs_quarantine", "purge", "--no-input")  # 30 days' retention
        assert f"{prefix}{second}" in quarantined(storage.client, prefix), kept.out
        settings.MOGILEFS_QUARANTINE_RETENTION = 0
        command("mogilefs_quarantine", "purge", "--no-input")
    assert quarantined(storage.client, prefix) == {}
    assert read(storage, second) == b"a new file"


def test_quarantine_restore_all_and_what_it_refuses(settings, mogile_target, prefix) -> None:
    storage = storage_at(mogile_target, prefix)
    with records_on(storage):
        names = [orphan(storage, f"{index}.txt", b"%d" % index) for index in range(3)]
        quarantine_orphans()
        nothing = command("mogilefs_quarantine", "restore")
        assert nothing.error is not None and "--all" in str(nothing.error)
        unknown = command("mogilefs_quarantine", "restore", f"{prefix}never.txt")
        assert (
            unknown.error is not None and f"not in the quarantine: {prefix}never.txt" in unknown.err
        )
        assert command("mogilefs_quarantine", "restore", "--all").error is None
        assert [read(storage, name) for name in names] == [b"0", b"1", b"2"]
        settings.MOGILEFS_QUARANTINE_RETENTION = "30 days"
        wrong = command("mogilefs_quarantine", "list")
    assert wrong.error is not None and "MOGILEFS_QUARANTINE_RETENTION" in str(wrong.error)


def test_the_quarantine_moves_only_the_file_it_was_given(mogile_target, prefix) -> None:
    storage = storage_at(mogile_target, prefix)
    client = storage.client
    quarantine = Quarantine(client)
    key = storage.key_for(orphan(storage, "file.txt", b"old"))
    old = client.file_info(key).fid

    client.store_content(key, b"saved again")
    with pytest.raises(NotMovedError, match="saved again or deleted"):
        quarantine.move(key, old, referenced=lambda: False)

    # Saved again between the last look and the rename: the wrong file moves
    # with the rename (by key), is found by its fid and put back.
    current = client.file_info(key).fid

    def save_again() -> bool:
        client.store_content(key, b"saved during the move")
        return False

    with pytest.raises(NotMovedError, match="put back"):
        quarantine.move(key, current, referenced=save_again)
    assert client.get_file_data(key) == b"saved during the move"

    # A row made during the move puts the file back too.
    current = client.file_info(key).fid
    answers = iter([False, True])
    with pytest.raises(NotMovedError, match="a row came to refer to it"):
        quarantine.move(key, current, referenced=lambda: next(answers))
    assert client.file_info(key).fid == current

    # Put back impossible: another file took the key meanwhile.
    racing = iter([False])

    def take_the_key() -> bool:
        if next(racing, None) is None:
            client.store_content(key, b"took the key")
            return True
        return False

    with pytest.raises(StrandedError, match="restore it by hand"):
        quarantine.move(key, current, referenced=take_the_key)
    assert client.get_file_data(key) == b"took the key"
    assert f"{key}" in quarantined(client, prefix)


def test_reserved_directories_are_refused_and_not_listed(mogile_target, prefix) -> None:
    root = storage_at(mogile_target, "")
    for name in (f"{QUARANTINE}1/x.txt", ".storages-mogile-staging/1-x"):
        with pytest.raises(SuspiciousFileOperation, match="choose a name outside it"):
            root.save(name, ContentFile(b"x"))
    storage = storage_at(mogile_target, prefix)
    quarantine_key = f"{QUARANTINE}{int(time.time())}/{prefix}x.txt"
    storage.client.store_content(quarantine_key, b"quarantined")
    try:
        assert QUARANTINE.rstrip("/") not in root.listdir("")[0]
        with pytest.raises(SuspiciousFileOperation):
            root.listdir(QUARANTINE)
    finally:
        storage.client.delete(quarantine_key)


# -- audits while the site saves --------------------------------------------------


class Site:
    """What a site does while audits run: new files with rows, new versions of referenced
    files, and rows made for files uploaded earlier (an orphan until its form is sent).

    Each thread has its own database connection; their writes take turns
    (SQLite's shared in-memory test database allows one writer at a time).
    """

    def __init__(self, model: type, storage: MogileFSStorage, adoptable: list[str]) -> None:
        self.model = model
        self.storage = storage
        self.overwriting = MogileFSStorage(**{**storage._options, "file_overwrite": True})
        self.adoptable = adoptable
        self.expected: dict[str, bytes] = {}
        self.too_late: list[str] = []
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        self.writing = threading.Lock()
        self.stop = threading.Event()
        self.turns = [0] * 4

    def run(self, worker: int, mine: str) -> None:
        """Until stopped: one of each, over and over (``mine``: a referenced name to resave)."""
        try:
            for turn in itertools.count():
                if self.stop.is_set():
                    return
                self.turn(b"new %d.%d" % (worker, turn), f"new/{worker}.txt", mine)
                self.turns[worker] += 1
        except BaseException as exc:
            self.errors.append(exc)
            raise
        finally:
            connections.close_all()

    def turn(self, content: bytes, new: str, mine: str) -> None:
        name = self.storage.save(new, ContentFile(content))
        with self.writing:
            self.model.objects.create(public=name)
        self.overwriting.save(mine, ContentFile(content))
        with self.lock:
            self.expected[name] = self.expected[mine] = content
            adopted = self.adoptable.pop() if self.adoptable else None
        if adopted is not None:
            self.adopt(adopted)

    def adopt(self, name: str) -> None:
        """A row for an old orphan; dropped if the file was moved before the row was made
        (then no row referred to it when it moved)."""
        with self.writing:
            row = self.model.objects.create(public=name)
        if self.storage.exists(name):
            with self.lock:
                self.expected[name] = b"orphan"
            return
        with self.writing:
            self.model._base_manager.filter(pk=row.pk).delete()
        with self.lock:
            self.too_late.append(name)


@pytest.mark.django_db(transaction=True)  # the threads' rows are committed, as a site's
def test_audits_while_threads_save_move_nothing_referenced(mogile_target, prefix) -> None:
    storage = storage_at(mogile_target, prefix)
    with records_on(storage) as model:
        old = [orphan(storage, f"old/{index}.txt") for index in range(40)]
        mine = [
            model.objects.create(public=ContentFile(b"v0", name=f"ref/{w}.txt")) for w in range(4)
        ]
        time.sleep(3.1)  # the old orphans are older than --grace 2
        site = Site(model, storage, adoptable=old[:20])
        site.expected.update((row.public.name, b"v0") for row in mine)
        with connection.cursor() as cursor:  # the audit reads while the site writes
            cursor.execute("PRAGMA read_uncommitted = 1")
        threads = [
            threading.Thread(target=site.run, args=(w, mine[w].public.name)) for w in range(4)
        ]
        try:
            for thread in threads:
                thread.start()
            runs = [quarantine_orphans("--grace", "2") for _ in range(3)]
        finally:
            site.stop.set()
            for thread in threads:
                thread.join()
        rows = {row.public.name for row in model._base_manager.all()}
    assert site.errors == []
    for run in runs:  # missing: only a row made for a file moved before it (then deleted)
        assert run.error is None or "not stored" in str(run.error), run.err
        assert missing_keys(run.out) <= {f"{prefix}{name}" for name in site.too_late}
    moved = quarantined(storage.client, prefix)
    assert not {storage.key_for(name) for name in rows} & set(moved)
    for name in rows:
        assert read(storage, name) == site.expected[name], name
    assert {f"{prefix}{name}" for name in old[20:]} <= set(moved), [
        run.out + run.err for run in runs
    ]
    assert min(site.turns) >= 2  # every thread saved during the audits


def test_audits_while_another_process_saves_move_nothing_referenced(
    mogile_target, prefix, tmp_path
) -> None:
    """The site and the audits are processes of their own, on one database file."""
    database = tmp_path / "site.sqlite3"
    env = site_process.environment(mogile_target.trackers, mogile_target.domain, prefix, database)
    assert manage(env, "migrate", "--run-syncdb", "--verbosity", "0").returncode == 0
    storage = storage_at(mogile_target, prefix)
    old = [orphan(storage, f"old/{index}.txt") for index in range(30)]
    time.sleep(3.1)  # the old orphans are older than --grace 2
    site = site_process.start(
        mogile_target.trackers, mogile_target.domain, prefix, database, "rows", "10", *old[:15]
    )
    try:
        audits = [
            manage(env, "mogilefs_audit", "--delete-orphans", "--no-input", "--grace", "2")
            for _ in range(3)
        ]
    finally:
        out, _ = site.communicate(timeout=120)
    assert site.returncode == 0
    lines = [json.loads(line) for line in out.splitlines()]
    expected = {line["name"]: line["content"].encode() for line in lines if "content" in line}
    too_late = {f"{prefix}{line['too_late']}" for line in lines if "too_late" in line}
    for audit in audits:  # missing: only a row made for a file moved before it (then deleted)
        assert audit.returncode == 0 or "not stored" in audit.stderr, audit.stderr
        assert missing_keys(audit.stdout) <= too_late
    with sqlite3.connect(database) as db:
        rows = {name for (name,) in db.execute("SELECT public FROM testapp_record")}
    moved = quarantined(storage.client, prefix)
    assert "moved" in audits[0].stdout
    assert not {storage.key_for(name) for name in rows} & set(moved)
    for name in rows:
        assert read(storage, name) == expected[name], name
    assert {f"{prefix}{name}" for name in old[15:]} <= set(moved)
    assert len(expected) > 20  # the site saved all along


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``django-admin`` in a process of its own."""
    command = [sys.executable, "-m", "django", *args]
    return subprocess.run(
        command, check=False, env=env, cwd=site_process.ROOT, capture_output=True, text=True
    )


def missing_keys(report: str) -> set[str]:
    """The keys an audit reported missing."""
    lines = (line.strip() for line in report.splitlines())
    return {line.split()[1] for line in lines if line.startswith("missing: ")}


def test_verify_checksums_lists_the_damaged_copies(mogile_target, prefix, md5_class) -> None:
    storage = storage_at(mogile_target, prefix, mogile_class=md5_class)
    with records_on(storage) as model:
        model.objects.create(public=ContentFile(b"intact" * 1000, name="intact.bin"))
        key = f"{prefix}damaged.bin"
        bad, _ = with_a_damaged_copy(storage.client, key, md5_class)
        model.objects.create(public="damaged.bin")
        unchecked = command("mogilefs_audit")
        run = command("mogilefs_audit", "--verify-checksums")
    assert unchecked.error is None
    assert run.error is not None and "1 damaged copies" in str(run.error)
    assert f"damaged copy: {key} at {bad}" in run.out and "1 damaged copies" in run.out


def test_keys_with_digits_int_refuses_are_left_alone(mogile_target, prefix) -> None:
    """A staging or quarantine key whose time is written in digits that
    ``str.isdigit()`` accepts and ``int()`` refuses ("\u00b2") is not one
    the project wrote: the audit and the quarantine list run, and keep it."""
    storage = storage_at(mogile_target, prefix)
    staged = f"{prefix}.storages-mogile-staging/\u00b2-odd"
    quarantined_key = f"{QUARANTINE}\u00b2/{prefix}odd.txt"
    storage.client.store_content(staged, b"odd staging key")
    storage.client.store_content(quarantined_key, b"odd quarantine key")
    with records_on(storage):
        report = command("mogilefs_audit", "--list")
        assert report.error is None, report.error
        moved = quarantine_orphans()
        assert moved.error is None, moved.error
        listed = command("mogilefs_quarantine", "list")
        assert listed.error is None, listed.error
    assert storage.client.get_file_data(staged) == b"odd staging key"
    assert storage.client.get_file_data(quarantined_key) == b"odd quarantine key"
    storage.client.delete(quarantined_key)

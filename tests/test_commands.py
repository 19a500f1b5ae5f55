"""The management commands mogilefs_setup and mogilefs_status, on a MogileFS of their own."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.management import CommandError, call_command

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.client import Admin
from storages_mogile.devserver import DevCluster
from storages_mogile.testing.models import stored_on
from tests.conftest import Target
from tests.test_checks import use_mogilefs


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def fresh_domain(settings, mogile_target: Target) -> str:
    """A project pointing at a domain that does not exist yet (cleaned up afterwards)."""
    domain = f"setup-{uuid.uuid4().hex[:12]}"
    use_mogilefs(settings, mogile_target.trackers, domain=domain)
    settings.MOGILEFS_CLASSES = {"big": 2, "small": 1}
    yield domain
    with Admin(mogile_target.trackers) as admin:
        for cls in admin.get_domains().get(domain, {}):
            if cls != "default":
                admin.delete_class(domain, cls)
        if domain in admin.get_domains():
            admin.delete_domain(domain)


def wait_for_classes(trackers: list[str], domain: str, classes: dict[str, int]) -> None:
    """Until every tracker lists the classes: a real tracker's domain cache lags a few
    seconds behind another tracker's writes."""
    deadline = time.monotonic() + 30
    for tracker in trackers:
        while True:
            with Admin([tracker]) as admin:
                found = admin.get_domains().get(domain, {})
            if all(found.get(cls) == copies for cls, copies in classes.items()):
                break
            assert time.monotonic() < deadline, f"{tracker}: {domain} has {found}, not {classes}"
            time.sleep(0.5)


def test_setup_creates_the_domain_and_classes_once(fresh_domain, mogile_target) -> None:
    planned = run("mogilefs_setup", "--dry-run")
    assert f"domain {fresh_domain}: would create" in planned
    assert f"class {fresh_domain}/big (2 copies): would create" in planned
    with Admin(mogile_target.trackers) as admin:
        assert fresh_domain not in admin.get_domains()  # a dry run changes nothing
    created = run("mogilefs_setup")
    assert f"domain {fresh_domain}: created" in created
    assert f"class {fresh_domain}/small (1 copies): created" in created
    wait_for_classes(mogile_target.trackers, fresh_domain, {"big": 2, "small": 1})
    again = run("mogilefs_setup")
    assert "created" not in again and again.count(": exists") == 3


def test_setup_changes_copies_only_when_asked(settings, fresh_domain, mogile_target) -> None:
    run("mogilefs_setup")
    wait_for_classes(mogile_target.trackers, fresh_domain, {"big": 2})
    settings.MOGILEFS_CLASSES = {"big": 1, "small": 1}
    with pytest.raises(CommandError, match="--update"):
        run("mogilefs_setup")
    assert run("mogilefs_setup", "--update-copies").count("changed from 2 copies") == 1
    wait_for_classes(mogile_target.trackers, fresh_domain, {"big": 1})


def test_setup_sets_hash_types_and_changes_them_only_when_asked(
    settings, fresh_domain, mogile_target
) -> None:
    settings.MOGILEFS_CLASSES = {"big": {"copies": 2, "hashtype": "MD5"}, "small": 1}
    created = run("mogilefs_setup")
    assert f"class {fresh_domain}/big (2 copies, MD5): created" in created
    wait_for_hash_type(mogile_target.trackers, fresh_domain, "big", "MD5")
    assert run("mogilefs_setup").count(": exists") == 3
    settings.MOGILEFS_CLASSES = {"big": {"copies": 2, "hashtype": "NONE"}, "small": 1}
    with pytest.raises(CommandError, match="--update"):
        run("mogilefs_setup")
    changed = run("mogilefs_setup", "--update")
    assert f"class {fresh_domain}/big (2 copies): changed from 2 copies, MD5" in changed
    wait_for_hash_type(mogile_target.trackers, fresh_domain, "big", "NONE")


def wait_for_hash_type(trackers: list[str], domain: str, cls: str, hashtype: str) -> None:
    """Until every tracker gives the class that hash type (a real tracker's cache lags)."""
    deadline = time.monotonic() + 30
    for tracker in trackers:
        while True:
            with Admin([tracker]) as admin:
                found = admin.get_classes(domain).get(cls)
            if found is not None and found.hashtype == hashtype:
                break
            assert time.monotonic() < deadline, f"{tracker}: {domain}/{cls} is {found}"
            time.sleep(0.5)


def test_setup_refuses_classes_used_but_not_declared(settings, mogile_target) -> None:
    use_mogilefs(settings, mogile_target.trackers, mogile_class="undeclared")
    settings.MOGILEFS_CLASSES = {}
    with pytest.raises(CommandError, match="'undeclared'.*MOGILEFS_CLASSES"):
        run("mogilefs_setup")


def test_status_shows_trackers_classes_and_devices(settings, mogile_target: Target) -> None:
    use_mogilefs(settings, mogile_target.trackers)
    table = run("mogilefs_status")
    assert "Domain testdomain" in table
    for tracker in mogile_target.trackers:
        assert tracker in table and "up" in table
    assert "avatar" in table and "MiB free" in table
    (report,) = json.loads(run("mogilefs_status", "--json"))
    assert report["classes"]["avatar"] == 2 and report["problems"] == []
    assert all(device["mb_free"] for host in report["hosts"] for device in host["devices"])


def test_status_with_a_node_stopped_and_a_tracker_down(settings, dev_cluster: DevCluster) -> None:
    down = dev_cluster.add_tracker()
    down.stop()
    use_mogilefs(settings, [dev_cluster.trackers[0], down.address])
    dev_cluster.nodes[1].stop()
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("mogilefs_status", "--json", stdout=out)
    (report,) = json.loads(out.getvalue())
    assert [tracker["up"] for tracker in report["trackers"]] == [True, False]
    states = {d["devid"]: d["observed_state"] for h in report["hosts"] for d in h["devices"]}
    assert states == {1: "writeable", 2: "unreachable"}
    assert "dev2 on node2 unreachable" in str(caught.value)
    assert down.address in str(caught.value)


@pytest.fixture
def audited(mogile_target: Target) -> Iterator[tuple[MogileFSStorage, type]]:
    """ContractDocument's fields on a MogileFS storage with a key prefix of its own."""
    storage = MogileFSStorage(
        domain=mogile_target.domain,
        trackers=mogile_target.trackers,
        key_prefix=f"audit-{uuid.uuid4().hex[:10]}/",
    )
    with stored_on(storage) as model:
        yield storage, model
    for key in list(storage.client.iter_keys(storage.key_prefix)):
        storage.client.delete(key)


def delete_orphans(*args: str, error: str = "row.* refer to files that are not stored") -> None:
    """``mogilefs_audit --delete-orphans``, which fails (exit 1) on the missing row or a refusal."""
    with pytest.raises(CommandError, match=error):
        call_command(
            "mogilefs_audit",
            "--delete-orphans",
            *args,
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )


@pytest.mark.django_db
def test_audit_finds_orphans_and_missing_files_and_deletes_only_old_orphans(audited) -> None:
    storage, model = audited
    for index in range(3):
        model.objects.create(attachment=ContentFile(b"kept", name=f"kept-{index}.txt"))
    gone = model.objects.create(attachment=ContentFile(b"gone", name="gone.txt"))
    storage.client.delete(storage.key_for(gone.attachment.name))
    orphans = [storage.save(f"orphan-{index}.txt", ContentFile(b"o")) for index in range(2)]
    staged = storage.key_prefix + f".storages-mogile-staging/{int(time.time()) - 7200}-killed"
    storage.client.store_content(staged, b"left by a killed save")

    out = io.StringIO()
    with pytest.raises(CommandError, match="1 row"):
        call_command("mogilefs_audit", "--list", stdout=out, stderr=io.StringIO())
    report = out.getvalue()
    assert "3 orphans" not in report and "2 orphans, 1 missing, 1 staging uploads" in report
    assert all(name in report for name in orphans) and gone.attachment.name in report

    # Just written: younger than the grace period, so kept even with --no-input.
    delete_orphans("--no-input", "--grace", "3600")
    assert all(storage.exists(name) for name in orphans)
    assert storage.client.file_info(staged)  # its node file is new too: kept

    delete_orphans("--no-input", "--grace", "0")
    assert not any(storage.exists(name) for name in orphans)
    assert [key for key in storage.client.iter_keys(storage.key_prefix) if "staging" in key] == []
    assert all(storage.exists(f"kept-{index}.txt") for index in range(3))


@pytest.mark.django_db
def test_audit_deletes_nothing_without_confirmation(audited, monkeypatch) -> None:
    storage, model = audited
    model.objects.create(attachment=ContentFile(b"kept", name="kept.txt"))
    orphan = storage.save("orphan.txt", ContentFile(b"o"))
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    delete_orphans("--grace", "0", error="nothing was deleted")
    assert storage.exists(orphan)


@pytest.fixture
def legacy(settings, tmp_path, audited):
    """300 documents whose files are on a FileSystemStorage, the STORAGES alias 'legacy'."""
    storage, model = audited
    settings.STORAGES = {
        **settings.STORAGES,
        "legacy": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }
    source = storages["legacy"]
    for index in range(300):
        name = source.save(f"docs/{index:03d}.txt", ContentFile(b"document %d " % index * 20))
        model.objects.create(attachment=name)
    return storage, source


FIELD = "storages_mogile_testing.ContractDocument.attachment"


def read(storage, name: str) -> bytes:
    with storage.open(name, "rb") as stream:
        return stream.read()


def import_(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("mogilefs_import", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_import_copies_resumes_and_verifies(legacy) -> None:
    storage, source = legacy
    planned, _ = import_(FIELD, "--source", "legacy", "--dry-run")
    assert "300 file(s) to copy or check" in planned
    assert not storage.exists("docs/000.txt")

    # An interrupted earlier run: 150 files copied, one cut short.
    for index in range(150):
        with source.open(f"docs/{index:03d}.txt") as stream:
            storage._store(storage.key_for(f"docs/{index:03d}.txt"), stream)
    storage.client.store_content(storage.key_for("docs/150.txt"), b"cut")

    summary, progress = import_(FIELD, "--source", "legacy", "--jobs", "4")
    assert "copied 150 file(s)" in summary and "skipped 150 already there" in summary
    assert "importing" in progress  # the progress bar, on stderr
    for index in (0, 150, 299):
        name = f"docs/{index:03d}.txt"
        assert read(storage, name) == read(source, name)
    assert storage.client.file_info(storage.key_for("docs/007.txt")).cls == "default"

    # Same size, other bytes: only --verify notices.
    storage.client.store_content(
        storage.key_for("docs/042.txt"), b"X" * source.size("docs/042.txt")
    )
    assert "copied 0 file(s)" in import_(FIELD, "--source", "legacy")[0]
    assert "copied 1 file(s)" in import_(FIELD, "--source", "legacy", "--verify")[0]
    assert read(storage, "docs/042.txt") == read(source, "docs/042.txt")
    assert source.exists("docs/042.txt")  # the source is never touched


@pytest.mark.django_db
def test_import_lists_every_failure_and_exits_1(legacy) -> None:
    _, source = legacy
    source.delete("docs/010.txt")
    source.delete("docs/020.txt")
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="2 file"):
        call_command("mogilefs_import", FIELD, "--source", "legacy", stdout=out, stderr=err)
    assert "copied 298 file(s)" in out.getvalue()
    assert "docs/010.txt" in err.getvalue() and "docs/020.txt" in err.getvalue()

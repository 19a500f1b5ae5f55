"""mogilefs_import: copies, resumes, and never replaces a file it did not put there."""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Iterator

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, storages
from django.core.management import CommandError, call_command

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.testing.models import ContractDocument, stored_on
from tests import site_process
from tests.conftest import Target
from tests.testapp.models import records_on

FIELD = "storages_mogile_testing.ContractDocument.attachment"

pytestmark = pytest.mark.django_db


@pytest.fixture
def destination(mogile_target: Target) -> Iterator[MogileFSStorage]:
    """A MogileFS storage with a key prefix of its own (emptied afterwards)."""
    storage = MogileFSStorage(
        domain=mogile_target.domain,
        trackers=mogile_target.trackers,
        key_prefix=f"import-{uuid.uuid4().hex[:10]}/",
    )
    yield storage
    for key in list(storage.client.iter_keys(storage.key_prefix)):
        storage.client.delete(key)


@pytest.fixture
def source(settings, tmp_path) -> FileSystemStorage:
    """The STORAGES alias 'legacy': a FileSystemStorage."""
    settings.STORAGES = {
        **settings.STORAGES,
        "legacy": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }
    return storages["legacy"]


@pytest.fixture
def legacy(source, destination) -> Iterator[tuple[MogileFSStorage, FileSystemStorage]]:
    """300 documents whose files are on the legacy storage; their field is on MogileFS."""
    for index in range(300):
        name = source.save(f"docs/{index:03d}.txt", ContentFile(b"document %d " % index * 20))
        ContractDocument.objects.create(attachment=name)
    with stored_on(destination):
        yield destination, source


def read(storage, name: str) -> bytes:
    with storage.open(name, "rb") as stream:
        return stream.read()


def import_(*args: str) -> tuple[str, str, CommandError | None]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("mogilefs_import", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), err.getvalue(), exc
    return out.getvalue(), err.getvalue(), None


def test_import_copies_resumes_and_verifies(legacy) -> None:
    storage, source = legacy
    planned, _, _ = import_(FIELD, "--source", "legacy", "--dry-run")
    assert "300 file(s) to copy or check" in planned
    assert not storage.exists("docs/000.txt")

    # An interrupted earlier run: 150 files copied.
    for index in range(150):
        with source.open(f"docs/{index:03d}.txt") as stream:
            storage._store(storage.key_for(f"docs/{index:03d}.txt"), stream)

    summary, progress, error = import_(FIELD, "--source", "legacy", "--jobs", "4")
    assert error is None
    assert "copied 150 file(s)" in summary and "skipped 150 already there" in summary
    assert "importing" in progress  # the progress bar, on stderr
    for index in (0, 150, 299):
        name = f"docs/{index:03d}.txt"
        assert read(storage, name) == read(source, name)
    assert storage.client.file_info(storage.key_for("docs/007.txt")).cls == "default"

    # Same size, other bytes: the size rule skips it; --verify finds a conflict.
    other = b"X" * source.size("docs/042.txt")
    storage.client.store_content(storage.key_for("docs/042.txt"), other)
    assert "copied 0 file(s)" in import_(FIELD, "--source", "legacy")[0]
    summary, problems, error = import_(FIELD, "--source", "legacy", "--verify")
    assert error is not None and "1 conflict" in str(error)
    assert "copied 0 file(s)" in summary and "docs/042.txt holds other content" in problems
    assert read(storage, "docs/042.txt") == other
    summary, _, error = import_(FIELD, "--source", "legacy", "--verify", "--overwrite")
    assert error is None and "copied 1 file(s)" in summary
    assert read(storage, "docs/042.txt") == read(source, "docs/042.txt")
    assert source.exists("docs/042.txt")  # the source is never touched


def test_import_leaves_a_newer_upload_alone(source, destination) -> None:
    """The docs' advice: run the import again for the files uploaded meanwhile."""
    legacy_name = source.save("docs/report.txt", ContentFile(b"the legacy 20 bytes."))
    with stored_on(destination) as model:
        model.objects.create(attachment=legacy_name)
        upload = b"a user's new upload, made after the first import ran."
        destination.client.store_content(destination.key_for(legacy_name), upload)

        summary, problems, error = import_(FIELD, "--source", "legacy")
        assert error is not None and "1 conflict" in str(error) and "--overwrite" in str(error)
        assert f"conflict: {legacy_name}: {destination.key_for(legacy_name)} holds" in problems
        assert "copied 0 file(s)" in summary
        assert read(destination, legacy_name) == upload

        summary, _, error = import_(FIELD, "--source", "legacy", "--overwrite")
    assert error is None and "copied 1 file(s)" in summary
    assert read(destination, legacy_name) == b"the legacy 20 bytes."


def test_import_lists_every_failure_and_exits_1(legacy) -> None:
    _, source = legacy
    source.delete("docs/010.txt")
    source.delete("docs/020.txt")
    summary, problems, error = import_(FIELD, "--source", "legacy")
    assert error is not None and "2 failure" in str(error)
    assert "copied 298 file(s)" in summary
    assert "docs/010.txt" in problems and "docs/020.txt" in problems


def test_import_copies_the_files_of_rows_a_default_manager_hides(source, destination) -> None:
    name = source.save("hidden.txt", ContentFile(b"soft-deleted, still referred to"))
    with records_on(destination) as model:
        model.objects.create(public=name, deleted=True)
        summary, _, error = import_("testapp.Record.public", "--source", "legacy")
    assert error is None and "copied 1 file(s)" in summary
    assert read(destination, name) == b"soft-deleted, still referred to"


def test_import_while_the_site_saves_replaces_nothing(legacy) -> None:
    """Users upload new versions (under the same names, when free) during the import."""
    storage, source = legacy
    rows = list(ContractDocument.objects.order_by("pk")[:120])
    uploaded: dict[str, bytes] = {}
    lock = threading.Lock()

    def site(mine: list[ContractDocument]) -> None:
        for row in mine:
            content = b"new upload of %d by a user" % row.pk
            name = storage.save(row.attachment.name, ContentFile(content))
            with lock:
                uploaded[name] = content

    threads = [threading.Thread(target=site, args=(rows[start::4],)) for start in range(4)]
    for thread in threads:
        thread.start()
    summary, problems, error = import_(FIELD, "--source", "legacy", "--jobs", "4")
    for thread in threads:
        thread.join()
    assert len(uploaded) == 120
    for name, content in uploaded.items():
        assert read(storage, name) == content, name
    taken = [name for name in uploaded if f"conflict: {name}:" in problems]
    assert summary.count("conflicts") == 1 and (error is None) == (not taken)
    for index in range(300):  # every legacy file that the site did not take is imported
        name = f"docs/{index:03d}.txt"
        if name not in uploaded:
            assert read(storage, name) == read(source, name)


def test_import_while_another_process_uploads_replaces_nothing(
    legacy, mogile_target, tmp_path
) -> None:
    """A user's upload under a legacy name, from the site's own process, during the import."""
    storage, source = legacy
    names = [f"docs/{index:03d}.txt" for index in range(298, -1, -2)]  # meeting the import
    site = site_process.start(
        mogile_target.trackers,
        mogile_target.domain,
        storage.key_prefix,
        tmp_path / "unused.sqlite3",
        "uploads",
        *names,
    )
    try:
        assert site.stdout is not None and site.stdout.readline() == "ready\n"
        summary, problems, _ = import_(FIELD, "--source", "legacy", "--jobs", "4")
    finally:
        out, _ = site.communicate(timeout=120)
    assert site.returncode == 0
    uploaded = {
        line["name"]: line["content"].encode() for line in map(json.loads, out.splitlines())
    }
    assert len(uploaded) == len(names)
    for name, content in uploaded.items():
        assert read(storage, name) == content, name
    for index in range(300):  # every legacy file the site did not take is imported
        name = f"docs/{index:03d}.txt"
        if name not in uploaded:
            assert read(storage, name) == read(source, name)
    taken = [name for name in names if name in uploaded]
    assert all(f"conflict: {name}:" in problems for name in taken), summary

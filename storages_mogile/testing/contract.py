"""The Django ``Storage`` contract as one pytest test class, run against any storage.

Subclass :class:`StorageContract`, declare the storage's :class:`Capabilities`
and provide a ``storage`` fixture; pytest then runs every contract test against
the storage the fixture returns.
"""

from __future__ import annotations

import io
import os
import posixpath
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import pytest
from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from storages_mogile.testing.acontract import AsyncStorageContract
from storages_mogile.testing.capabilities import Capabilities, PathSupport
from storages_mogile.testing.content import (
    ASCII_TEXT,
    LARGE_SIZE,
    MIB,
    SOURCES,
    TEXT,
    binary_payload,
    png_payload,
)
from storages_mogile.testing.stored import StoredFiles, unique_prefix

#: Size of the payload saved through each kind of source.
SMALL_SIZE = 64 * 1024 + 3
#: How far a file's timestamps may be from this machine's clock.
CLOCK_TOLERANCE = timedelta(minutes=5)

#: Names ``Storage.save()`` must refuse: they escape the storage root or name no file.
CONCURRENT_SAVES = 16
CONCURRENT_ROUNDS = 5

UNSAFE_NAMES = [
    "../escape.txt",
    "nested/../../escape.txt",
    "nested/../sibling.txt",
    "..\\escape.txt",
    "/absolute.txt",
    "/etc/passwd",
    "",
    ".",
    "nested/..",
    "nested/",
]

#: Names whose URLs need percent-encoding: space, non-ASCII, URL delimiters.
URL_NAMES = [
    "with space.txt",
    "ünïcödé 世界.txt",
    "delimiters +%#?&=;.txt",
]


def save_concurrently(storage: Storage, name: str, count: int) -> dict[bytes, str]:
    """``count`` threads save distinct bytes under ``name`` at once: {bytes: name given}."""
    barrier = threading.Barrier(count)

    def save(index: int) -> tuple[bytes, str]:
        data = f"save {index} of {name}".encode() * 50
        barrier.wait()
        return data, storage.save(name, ContentFile(data))

    with ThreadPoolExecutor(max_workers=count) as pool:
        return dict(pool.map(save, range(count)))


def read_back(storage: Storage, name: str, mode: str = "rb") -> Any:
    """The whole content of ``name``, read through ``storage.open()``."""
    with storage.open(name, mode) as stored_file:
        return stored_file.read()


def assert_current_time(moment: datetime) -> None:
    """``moment`` is a datetime near now, aware exactly when ``USE_TZ`` is on."""
    assert isinstance(moment, datetime)
    if settings.USE_TZ:
        assert timezone.is_aware(moment), f"{moment!r} is naive although USE_TZ is True"
        now = timezone.now()
    else:
        assert timezone.is_naive(moment), f"{moment!r} is aware although USE_TZ is False"
        now = datetime.now()
    assert abs(now - moment) < CLOCK_TOLERANCE, f"{moment!r} is far from now ({now!r})"


class StorageContract(AsyncStorageContract):
    """Tests of the Django ``Storage`` contract for the storage the ``storage`` fixture returns.

    Subclasses name themselves ``Test...``, set ``capabilities`` and define a
    ``storage`` fixture. The async half (``acontract``) runs for a storage
    with async methods. Every test saves under a prefix of its own and deletes
    what it saved, so a storage shared between tests (or test runs) is fine.
    """

    capabilities: ClassVar[Capabilities] = Capabilities()

    @pytest.fixture
    def stored(self, storage: Storage, request: pytest.FixtureRequest) -> Iterator[StoredFiles]:
        """Names this test saves, removed from ``storage`` when it ends."""
        files = StoredFiles(storage, unique_prefix(request.node.name))
        yield files
        files.remove_all()

    # -- saving and reading content ------------------------------------------------

    @pytest.mark.parametrize("source", sorted(SOURCES))
    def test_save_and_read_back(
        self, storage: Storage, stored: StoredFiles, source: str, tmp_path: Path
    ) -> None:
        data = binary_payload(SMALL_SIZE)
        content = SOURCES[source](data, tmp_path)
        try:
            name = stored.save("saved.bin", content)
        finally:
            content.close()
        assert name == stored.name("saved.bin")
        assert storage.exists(name)
        assert storage.size(name) == len(data)
        with storage.open(name, "rb") as stored_file:
            assert stored_file.size == len(data)
            assert stored_file.read() == data

    def test_empty_content(self, storage: Storage, stored: StoredFiles) -> None:
        name = stored.save("empty.bin", ContentFile(b""))
        assert storage.exists(name)
        assert storage.size(name) == 0
        assert read_back(storage, name) == b""

    def test_ascii_text_content(self, storage: Storage, stored: StoredFiles) -> None:
        self._check_text_round_trip(storage, stored, ASCII_TEXT)

    def test_non_ascii_text_content(self, storage: Storage, stored: StoredFiles) -> None:
        self._check_text_round_trip(storage, stored, TEXT)

    def _check_text_round_trip(self, storage: Storage, stored: StoredFiles, text: str) -> None:
        """``str`` content is stored as its UTF-8 bytes and reads back in either mode."""
        name = stored.save("text.txt", ContentFile(text))
        encoded = text.encode("utf-8")
        assert storage.size(name) == len(encoded)
        assert read_back(storage, name, "rb") == encoded
        assert read_back(storage, name, "r") == text

    @pytest.mark.parametrize("source", ["content_file", "non_seekable", "temporary_upload"])
    def test_large_binary_content(
        self, storage: Storage, stored: StoredFiles, source: str, tmp_path: Path
    ) -> None:
        data = binary_payload(LARGE_SIZE)
        content = SOURCES[source](data, tmp_path)
        try:
            name = stored.save("large.bin", content)
        finally:
            content.close()
        assert storage.size(name) == LARGE_SIZE
        assert read_back(storage, name) == data

    def test_read_in_chunks(self, storage: Storage, stored: StoredFiles) -> None:
        data = binary_payload(LARGE_SIZE, seed=1)
        name = stored.save("chunked.bin", ContentFile(data))
        chunk_size = MIB + 7  # not a divisor of the size: the last chunk is short
        with storage.open(name, "rb") as stored_file:
            assert stored_file.multiple_chunks(chunk_size)
            chunks = list(stored_file.chunks(chunk_size))
        assert all(len(chunk) == chunk_size for chunk in chunks[:-1])
        assert 0 < len(chunks[-1]) <= chunk_size
        assert b"".join(chunks) == data

    def test_read_with_sized_reads(self, storage: Storage, stored: StoredFiles) -> None:
        data = binary_payload(SMALL_SIZE, seed=2)
        name = stored.save("sized.bin", ContentFile(data))
        pieces = []
        with storage.open(name, "rb") as stored_file:
            while piece := stored_file.read(4096):
                assert len(piece) <= 4096
                pieces.append(piece)
            assert stored_file.read(4096) == b""
        assert b"".join(pieces) == data

    def test_seek_in_opened_file(self, storage: Storage, stored: StoredFiles) -> None:
        data = binary_payload(SMALL_SIZE, seed=3)
        name = stored.save("seek.bin", ContentFile(data))
        with storage.open(name, "rb") as stored_file:
            assert stored_file.read(100) == data[:100]
            if not self.capabilities.seekable_read:
                assert not stored_file.seekable()
                with pytest.raises(io.UnsupportedOperation):
                    stored_file.seek(0)
                return
            assert stored_file.seekable()
            assert stored_file.tell() == 100
            stored_file.seek(40)
            assert stored_file.read(10) == data[40:50]
            stored_file.seek(0)
            assert stored_file.read() == data

    # -- names: collisions, unsafe names, unicode ------------------------------------

    def test_saving_a_taken_name(self, storage: Storage, stored: StoredFiles) -> None:
        first = stored.save("taken.txt", ContentFile(b"first version, the longer one"))
        second = stored.save("taken.txt", ContentFile(b"second"))
        if self.capabilities.overwrite:
            assert second == first
            assert read_back(storage, first) == b"second"
            assert storage.size(first) == len(b"second")
            return
        assert second != first
        assert posixpath.dirname(second) == posixpath.dirname(first)
        assert posixpath.splitext(second)[1] == ".txt"
        assert read_back(storage, first) == b"first version, the longer one"
        assert read_back(storage, second) == b"second"

    @pytest.mark.parametrize("round_", range(CONCURRENT_ROUNDS))
    def test_concurrent_saves_of_one_name_keep_every_file(
        self, storage: Storage, stored: StoredFiles, round_: int, request: pytest.FixtureRequest
    ) -> None:
        """16 threads save the same name at once: 16 names, each with its own bytes."""
        if self.capabilities.overwrite:
            pytest.skip("an overwriting storage gives every save the same name by design")
        if not self.capabilities.concurrent_saves:
            request.applymarker(
                pytest.mark.xfail(reason="declared: concurrent saves may share a name")
            )
        saved = save_concurrently(storage, stored.name("same.txt"), CONCURRENT_SAVES)
        for name in saved.values():
            stored.track(name)
        assert len(set(saved.values())) == CONCURRENT_SAVES, "saves were given the same name"
        for data, name in saved.items():
            assert read_back(storage, name) == data, f"{name} holds another save's bytes"

    def test_available_name_of_a_taken_name(self, storage: Storage, stored: StoredFiles) -> None:
        name = stored.save("occupied.txt", ContentFile(b"x"))
        available = storage.get_available_name(name)
        if self.capabilities.overwrite:
            assert available == name
        else:
            assert available != name
            assert not storage.exists(available)

    def test_alternative_name_respects_max_length(
        self, storage: Storage, stored: StoredFiles
    ) -> None:
        max_length = len(stored.name("max-length-probe.txt"))
        first = stored.save("max-length-probe.txt", ContentFile(b"one"), max_length=max_length)
        second = stored.save("max-length-probe.txt", ContentFile(b"two"), max_length=max_length)
        assert len(first) <= max_length
        assert len(second) <= max_length
        assert (second == first) is self.capabilities.overwrite
        assert read_back(storage, second) == b"two"

    @pytest.mark.parametrize("unsafe_name", UNSAFE_NAMES)
    def test_save_rejects_unsafe_name(
        self, storage: Storage, stored: StoredFiles, unsafe_name: str
    ) -> None:
        with pytest.raises(SuspiciousFileOperation):
            # Track what a faulty storage stores anyway, so the test still cleans up.
            stored.track(storage.save(unsafe_name, ContentFile(b"must not be stored")))

    def test_nul_in_a_name_never_reaches_another_file(
        self, storage: Storage, stored: StoredFiles
    ) -> None:
        # Stores that cut names at NUL (C strings, a MogileFS tracker on
        # PostgreSQL) would make "report.txt\0.png" overwrite "report.txt".
        name = stored.save("report.txt", ContentFile(b"original"))
        try:
            stored.track(storage.save(name + "\0.png", ContentFile(b"intruder")))
        except (SuspiciousFileOperation, ValueError):
            pass  # refused: what a storage should do
        assert read_back(storage, name) == b"original"

    def test_unicode_and_space_names(self, storage: Storage, stored: StoredFiles) -> None:
        data = "Inhalt für 世界".encode()
        name = stored.save("dír with space/fïle ñame 世界.txt", ContentFile(data))
        assert name == stored.name("dír with space/fïle ñame 世界.txt")
        assert storage.exists(name)
        assert storage.size(name) == len(data)
        assert read_back(storage, name) == data
        if self.capabilities.listdir:
            assert storage.listdir(stored.prefix) == (["dír with space"], [])
            directories, files = storage.listdir(stored.name("dír with space"))
            assert (directories, files) == ([], ["fïle ñame 世界.txt"])
        storage.delete(name)
        assert not storage.exists(name)

    # -- exists, size, delete, missing files -----------------------------------------

    def test_exists_size_delete(self, storage: Storage, stored: StoredFiles) -> None:
        name = stored.name("lifecycle.bin")
        assert not storage.exists(name)
        assert stored.save("lifecycle.bin", ContentFile(b"12345")) == name
        assert storage.exists(name)
        assert storage.size(name) == 5
        storage.delete(name)
        assert not storage.exists(name)
        with pytest.raises(FileNotFoundError):
            storage.open(name, "rb")

    def test_delete_of_a_missing_file_is_quiet(self, storage: Storage, stored: StoredFiles) -> None:
        name = stored.name("never-saved.bin")
        storage.delete(name)
        assert not storage.exists(name)

    def test_missing_file_raises_file_not_found(
        self, storage: Storage, stored: StoredFiles
    ) -> None:
        name = stored.name("missing.bin")
        with pytest.raises(FileNotFoundError):
            storage.open(name, "rb")
        with pytest.raises(FileNotFoundError):
            storage.size(name)

    # -- listing, URLs, paths, times ----------------------------------------------------

    def test_listdir(self, storage: Storage, stored: StoredFiles) -> None:
        for relative in ("tree/a.txt", "tree/b.bin", "tree/sub/c.txt", "tree/sub/deeper/d.txt"):
            stored.save(relative, ContentFile(relative.encode()))
        if not self.capabilities.listdir:
            with pytest.raises(NotImplementedError):
                storage.listdir(stored.name("tree"))
            return
        directories, files = storage.listdir(stored.name("tree"))
        assert (sorted(directories), sorted(files)) == (["sub"], ["a.txt", "b.bin"])
        directories, files = storage.listdir(stored.name("tree/sub"))
        assert (sorted(directories), sorted(files)) == (["deeper"], ["c.txt"])

    @pytest.mark.parametrize("relative", URL_NAMES)
    def test_url_is_percent_encoded(
        self, storage: Storage, stored: StoredFiles, relative: str
    ) -> None:
        name = stored.save(relative, ContentFile(b"served"))
        if not self.capabilities.url:
            with pytest.raises(NotImplementedError):
                storage.url(name)
            return
        url = storage.url(name)
        assert url.isascii() and " " not in url, f"{url!r} is not percent-encoded"
        # Same encoding as Django's filepath_to_uri() and S3's key quoting.
        assert urlsplit(url).path.endswith("/" + quote(name)), url

    def test_path(self, storage: Storage, stored: StoredFiles) -> None:
        name = stored.save("local.bin", ContentFile(b"on disk?"))
        support = self.capabilities.path
        if support is PathSupport.NONE:
            with pytest.raises(NotImplementedError):
                storage.path(name)
            return
        path = storage.path(name)
        assert os.path.isabs(path)
        assert Path(path).parts[-2:] == Path(name).parts[-2:]
        if support is PathSupport.LOCAL:
            assert Path(path).read_bytes() == b"on disk?"
        else:
            assert not os.path.exists(path)

    @pytest.mark.parametrize("kind", ["modified", "created", "accessed"])
    def test_file_times(self, storage: Storage, stored: StoredFiles, kind: str) -> None:
        name = stored.save("timed.bin", ContentFile(b"tick"))
        get_time = getattr(storage, f"get_{kind}_time")
        if not getattr(self.capabilities, f"{kind}_time"):
            with pytest.raises(NotImplementedError):
                get_time(name)
            return
        assert_current_time(get_time(name))

    # -- the ORM: FileField and ImageField -------------------------------------------

    @pytest.mark.django_db
    def test_model_file_and_image_fields(self, storage: Storage, stored: StoredFiles) -> None:
        from storages_mogile.testing.models import stored_on

        attachment = binary_payload(4096, seed=4)
        picture = png_payload(7, 5)
        with stored_on(storage) as document_model:
            document = document_model()
            # Named uploads, as forms hand them over. Django 5.2+ takes the
            # dimensions from the uploaded content, Django 4.2 from the storage.
            upload = SimpleUploadedFile("attachment.bin", attachment)
            document.attachment.save(stored.name("attachment.bin"), upload)
            stored.track(document.attachment.name)
            upload = SimpleUploadedFile("picture.png", picture, "image/png")
            document.picture.save(stored.name("picture.png"), upload)
            stored.track(document.picture.name)
            assert (document.picture_width, document.picture_height) == (7, 5)

            fresh = document_model.objects.get(pk=document.pk)
            assert fresh.attachment.name == stored.name("attachment.bin")
            assert fresh.picture.name == stored.name("picture.png")
            assert (fresh.picture_width, fresh.picture_height) == (7, 5)
            assert fresh.attachment.size == len(attachment)
            with fresh.attachment.open("rb") as stored_file:
                assert stored_file.read() == attachment
            # width and height read the image itself from the storage.
            assert (fresh.picture.width, fresh.picture.height) == (7, 5)
            assert read_back(storage, fresh.picture.name) == picture
            if self.capabilities.url:
                url_path = urlsplit(fresh.attachment.url).path
                assert url_path == urlsplit(storage.url(fresh.attachment.name)).path

            names = (fresh.attachment.name, fresh.picture.name)
            fresh.attachment.delete(save=False)
            fresh.picture.delete(save=False)
            fresh.delete()
            assert not any(storage.exists(name) for name in names)
            assert not document_model.objects.filter(pk=document.pk).exists()

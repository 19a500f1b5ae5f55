"""The harness itself: its helpers work, and its tests fail on storages that break the contract."""

from __future__ import annotations

import io
import os
from datetime import datetime
from pathlib import Path

import pytest
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

from storages_mogile.testing import (
    Capabilities,
    NonSeekableStream,
    PathSupport,
    StorageContract,
    StoredFiles,
)
from storages_mogile.testing.stored import unique_prefix

# -- helpers ------------------------------------------------------------------------


def test_non_seekable_stream_reads_once_and_refuses_to_seek() -> None:
    stream = NonSeekableStream(b"abcdefgh")
    assert not stream.seekable()
    assert stream.read(3) == b"abc"
    with pytest.raises(io.UnsupportedOperation):
        stream.seek(0)
    with pytest.raises(io.UnsupportedOperation):
        stream.tell()
    assert stream.read() == b"defgh"
    assert stream.read() == b""


def test_django_file_chunks_a_non_seekable_stream() -> None:
    # What Storage.save() does with it: wrap it in a File and read its chunks.
    chunks = list(File(NonSeekableStream(b"x" * 10)).chunks(chunk_size=4))
    assert chunks == [b"xxxx", b"xxxx", b"xx"]


def test_unique_prefix_is_unique_and_path_safe() -> None:
    first = unique_prefix("test_x[../ü name]")
    second = unique_prefix("test_x[../ü name]")
    assert first != second
    assert first.startswith("contract-test_x-")
    assert all(character.isascii() and character not in "/. " for character in first)


def test_stored_files_removes_what_it_saved(tmp_path: Path) -> None:
    storage = FileSystemStorage(location=tmp_path)
    stored = StoredFiles(storage, "prefix")
    first = stored.save("a.txt", ContentFile(b"a"))
    second = stored.track(storage.save("elsewhere/b.txt", ContentFile(b"b")))
    storage.save("kept.txt", ContentFile(b"kept"))
    stored.remove_all()
    assert not storage.exists(first)
    assert not storage.exists(second)
    assert storage.exists("kept.txt")


# -- the contract catches broken storages -------------------------------------------


class SizeFirstStorage(FileSystemStorage):
    """Asks for the content's size before saving, which a non-seekable stream lacks."""

    def _save(self, name, content):
        content.size  # noqa: B018
        return super()._save(name, content)


class RawUrlStorage(FileSystemStorage):
    """Puts the name into the URL without percent-encoding."""

    def url(self, name):
        return self.base_url + name


class LoudDeleteStorage(FileSystemStorage):
    """Raises when asked to delete a name that does not exist."""

    def delete(self, name):
        os.remove(self.path(name))


class NaiveTimeStorage(FileSystemStorage):
    """Returns naive local times although USE_TZ is on."""

    def get_modified_time(self, name):
        return datetime.now()


def run_contract_test(
    storage: FileSystemStorage, capabilities: Capabilities, test_name: str, **arguments
) -> None:
    """Run one contract test against ``storage`` as declared by ``capabilities``."""
    contract = StorageContract()
    contract.capabilities = capabilities
    stored = StoredFiles(storage, unique_prefix(test_name))
    try:
        getattr(contract, test_name)(storage=storage, stored=stored, **arguments)
    finally:
        stored.remove_all()


LOCAL = Capabilities(path=PathSupport.LOCAL)
#: What pytest.raises() raises when the expected exception does not come.
DID_NOT_RAISE = pytest.fail.Exception
SPACE_NAME = {"relative": "with space.txt"}


@pytest.mark.parametrize(
    ("storage_class", "capabilities", "test_name", "arguments", "failure"),
    [
        pytest.param(
            SizeFirstStorage,
            LOCAL,
            "test_save_and_read_back",
            {"source": "non_seekable"},
            io.UnsupportedOperation,
            id="needs-size-up-front",
        ),
        pytest.param(
            RawUrlStorage,
            LOCAL,
            "test_url_is_percent_encoded",
            SPACE_NAME,
            AssertionError,
            id="unquoted-url",
        ),
        pytest.param(
            LoudDeleteStorage,
            LOCAL,
            "test_delete_of_a_missing_file_is_quiet",
            {},
            FileNotFoundError,
            id="loud-delete",
        ),
        pytest.param(
            NaiveTimeStorage,
            LOCAL,
            "test_file_times",
            {"kind": "modified"},
            AssertionError,
            id="naive-time",
        ),
        # A capability declared wrongly, either way round, fails too.
        pytest.param(
            FileSystemStorage,
            Capabilities(overwrite=True, path=PathSupport.LOCAL),
            "test_saving_a_taken_name",
            {},
            AssertionError,
            id="claims-overwrite",
        ),
        pytest.param(
            FileSystemStorage,
            Capabilities(listdir=False, path=PathSupport.LOCAL),
            "test_listdir",
            {},
            DID_NOT_RAISE,
            id="denies-listdir",
        ),
        pytest.param(
            FileSystemStorage,
            Capabilities(url=False, path=PathSupport.LOCAL),
            "test_url_is_percent_encoded",
            SPACE_NAME,
            DID_NOT_RAISE,
            id="denies-url",
        ),
        pytest.param(
            FileSystemStorage,
            Capabilities(seekable_read=False, path=PathSupport.LOCAL),
            "test_seek_in_opened_file",
            {},
            AssertionError,
            id="denies-seek",
        ),
        pytest.param(
            FileSystemStorage,
            Capabilities(path=PathSupport.NONE),
            "test_path",
            {},
            DID_NOT_RAISE,
            id="denies-path",
        ),
        pytest.param(
            FileSystemStorage,
            Capabilities(path=PathSupport.VIRTUAL),
            "test_path",
            {},
            AssertionError,
            id="calls-path-virtual",
        ),
    ],
)
def test_contract_fails_a_storage_that_breaks_it(
    tmp_path: Path, storage_class, capabilities, test_name, arguments, failure
) -> None:
    storage = storage_class(location=tmp_path / "media", base_url="/media/")
    if test_name == "test_save_and_read_back":
        arguments = {**arguments, "tmp_path": tmp_path}
    with pytest.raises(failure):
        run_contract_test(storage, capabilities, test_name, **arguments)

"""Saves of files on disk reach the storage node by sendfile, through the whole storage."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from django.core.files.base import File
from django.core.files.uploadedfile import TemporaryUploadedFile

from storages_mogile.backends.mogile import MogileFSStorage
from tests.client.test_sendfile import Unreadable

pytestmark = pytest.mark.usefixtures("mogile_settings")

DATA = os.urandom(3 * 1024 * 1024 + 7)  # more than a chunk (1 MiB)


def test_saving_a_file_on_disk_never_reads_it_through_python(tmp_path: Path) -> None:
    storage = MogileFSStorage()
    source = tmp_path / "photo.jpg"
    source.write_bytes(DATA)
    with Unreadable(source) as raw:
        name = storage.save(f"uploads/{uuid.uuid4().hex}.jpg", File(raw))
    with storage.open(name) as stored:
        assert stored.read() == DATA


def test_saving_a_temporary_upload(tmp_path: Path) -> None:
    storage = MogileFSStorage()
    with TemporaryUploadedFile("a.bin", "application/octet-stream", len(DATA), None) as upload:
        upload.write(DATA)
        upload.seek(0)
        name = storage.save(f"uploads/{uuid.uuid4().hex}.bin", upload)
    with storage.open(name) as stored:
        assert stored.read() == DATA

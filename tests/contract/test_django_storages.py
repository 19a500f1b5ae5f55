"""The contract against Django's own storages: it tests Django's contract, not ours."""

from __future__ import annotations

from pathlib import Path

import django
import pytest
from django.core.files.storage import FileSystemStorage, InMemoryStorage

from storages_mogile.testing import Capabilities, PathSupport, StorageContract

# allow_overwrite arrived in Django 5.1.
HAS_ALLOW_OVERWRITE = django.VERSION >= (5, 1)


class TestFileSystemStorage(StorageContract):
    capabilities = Capabilities(path=PathSupport.LOCAL)

    @pytest.fixture
    def storage(self, tmp_path: Path) -> FileSystemStorage:
        return FileSystemStorage(location=tmp_path / "media", base_url="/media/")


@pytest.mark.skipif(not HAS_ALLOW_OVERWRITE, reason="allow_overwrite needs Django 5.1+")
class TestFileSystemStorageOverwrite(StorageContract):
    capabilities = Capabilities(overwrite=True, path=PathSupport.LOCAL)

    @pytest.fixture
    def storage(self, tmp_path: Path) -> FileSystemStorage:
        return FileSystemStorage(
            location=tmp_path / "media", base_url="/media/", allow_overwrite=True
        )


class TestInMemoryStorage(StorageContract):
    capabilities = Capabilities(path=PathSupport.VIRTUAL)

    @pytest.fixture
    def storage(self) -> InMemoryStorage:
        return InMemoryStorage(location="/srv/media", base_url="/media/")

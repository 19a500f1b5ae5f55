"""Per-test bookkeeping of stored names, so tests on a shared backend do not collide."""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.core.files.storage import Storage

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def unique_prefix(test_name: str) -> str:
    """A directory name of its own for one run of the test called ``test_name``."""
    readable = _UNSAFE.sub("-", test_name).strip("-")[:60]
    return f"contract-{readable}-{uuid.uuid4().hex[:10]}"


class StoredFiles:
    """The names one test stores under its prefix; ``remove_all()`` deletes them."""

    def __init__(self, storage: Storage, prefix: str) -> None:
        self.storage = storage
        self.prefix = prefix
        self._names: list[str] = []

    def name(self, relative: str) -> str:
        """``relative`` placed under this test's prefix."""
        return f"{self.prefix}/{relative}"

    def track(self, name: str) -> str:
        """Remember ``name`` (stored some other way) for removal; returns it."""
        self._names.append(name)
        return name

    def save(self, relative: str, content: Any, max_length: int | None = None) -> str:
        """Save ``content`` under the prefixed ``relative`` name; returns the stored name."""
        return self.track(self.storage.save(self.name(relative), content, max_length=max_length))

    def remove_all(self) -> None:
        """Delete every remembered name that still exists."""
        for name in reversed(self._names):
            if self.storage.exists(name):
                self.storage.delete(name)
        self._names.clear()

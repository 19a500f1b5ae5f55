"""A shared test harness for the Django ``Storage`` contract.

Usage (see ``docs/testing.md``)::

    from storages_mogile.testing import Capabilities, StorageContract

    class TestMyStorage(StorageContract):
        capabilities = Capabilities(overwrite=True)

        @pytest.fixture
        def storage(self):
            return MyStorage(...)

Add ``"storages_mogile.testing"`` to ``INSTALLED_APPS`` in the test settings:
the ORM part of the contract saves through a model of that app.
"""

from __future__ import annotations

import pytest

# The contract's plain asserts get pytest's detailed failure messages.
pytest.register_assert_rewrite(
    "storages_mogile.testing.contract", "storages_mogile.testing.acontract"
)

from storages_mogile.testing.capabilities import Capabilities, PathSupport
from storages_mogile.testing.content import NonSeekableStream
from storages_mogile.testing.contract import StorageContract
from storages_mogile.testing.stored import StoredFiles

__all__ = ["Capabilities", "NonSeekableStream", "PathSupport", "StorageContract", "StoredFiles"]

"""Django storage backend for MogileFS."""

from __future__ import annotations

import logging
from typing import Any

# A library leaves the output of its log records to the project's LOGGING:
# without a handler here, Python's last-resort handler would print bare
# warnings (a tracker that failed) amid a command's own output.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"
__all__ = ["__version__", "mogile_storage"]


def __getattr__(name: str) -> Any:
    # Imported on demand so that `python -m storages_mogile.devserver` and the
    # client work without Django settings being configured.
    if name == "mogile_storage":
        from storages_mogile.backends.mogile import mogile_storage

        return mogile_storage
    raise AttributeError(f"module 'storages_mogile' has no attribute {name!r}")

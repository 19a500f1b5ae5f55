"""Django storage backend for MogileFS."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "mogile_storage"]


def __getattr__(name: str) -> Any:
    # Imported on demand so that `python -m storages_mogile.devserver` and the
    # client work without Django settings being configured.
    if name == "mogile_storage":
        from storages_mogile.backends.mogile import mogile_storage

        return mogile_storage
    raise AttributeError(f"module 'storages_mogile' has no attribute {name!r}")

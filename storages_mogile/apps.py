"""The ``storages_mogile`` Django app: add it to ``INSTALLED_APPS`` for the system checks."""

from __future__ import annotations

from django.apps import AppConfig


class StoragesMogileConfig(AppConfig):
    name = "storages_mogile"
    verbose_name = "MogileFS storage"

    def ready(self) -> None:
        from storages_mogile import checks  # noqa: F401  (registers the checks)

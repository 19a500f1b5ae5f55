"""The harness as a Django app: it holds the model the ORM part of the contract uses."""

from __future__ import annotations

from django.apps import AppConfig


class StorageContractConfig(AppConfig):
    """Add ``"storages_mogile.testing"`` to ``INSTALLED_APPS`` in test settings."""

    name = "storages_mogile.testing"
    # "testing" alone would clash too easily with a project's own app.
    label = "storages_mogile_testing"
    verbose_name = "Storage contract tests"
    default_auto_field = "django.db.models.AutoField"

"""A model with a file and an image, stored on whichever storage a contract test swaps in.

The app has no migrations: Django's test runner creates its table with
``run_syncdb``, the way it does for any app without migrations.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.files.storage import Storage
from django.db import models


class ContractDocument(models.Model):
    """A document with an attachment and a picture whose size Django records."""

    attachment = models.FileField(max_length=255)
    picture = models.ImageField(
        max_length=255,
        blank=True,
        width_field="picture_width",
        height_field="picture_height",
    )
    picture_width = models.PositiveIntegerField(null=True, blank=True)
    picture_height = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        app_label = "storages_mogile_testing"


@contextmanager
def stored_on(storage: Storage) -> Iterator[type[ContractDocument]]:
    """Make ``ContractDocument``'s file fields use ``storage`` inside the block."""
    fields = [ContractDocument._meta.get_field(name) for name in ("attachment", "picture")]
    previous = [field.storage for field in fields]
    for field in fields:
        field.storage = storage
    try:
        yield ContractDocument
    finally:
        for field, original in zip(fields, previous):
            field.storage = original

"""Models of the suite's own app: files on storages a test chooses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.files.storage import Storage
from django.db import models


class ShownManager(models.Manager["Record"]):
    """The default manager hides soft-deleted rows, as many projects' do."""

    def get_queryset(self) -> models.QuerySet[Record]:
        return super().get_queryset().filter(deleted=False)


class Record(models.Model):
    """A row with a public and a private file, soft-deleted rather than deleted."""

    public = models.FileField(max_length=255, blank=True)
    private = models.FileField(max_length=255, blank=True)
    deleted = models.BooleanField(default=False)

    objects = ShownManager()

    class Meta:
        app_label = "testapp"


@contextmanager
def records_on(public: Storage, private: Storage | None = None) -> Iterator[type[Record]]:
    """Make ``Record``'s fields use these storages inside the block (private: public's)."""
    fields = [Record._meta.get_field(name) for name in ("public", "private")]
    previous = [field.storage for field in fields]
    for field, storage in zip(fields, (public, private or public)):
        field.storage = storage
    try:
        yield Record
    finally:
        for field, original in zip(fields, previous):
            field.storage = original

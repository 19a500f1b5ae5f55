"""What ``mogilefs_audit`` compares: each cluster's keys and the rows that name them.

Storages that reach one MogileFS domain share its keys, whatever their key
prefixes (``clusters.key_spaces``): a key under ``media/private/`` is a name
of the storage with prefix ``media/`` too. So the audit works per cluster: a
stored key is referenced when any model field's storage reads some row's
name as that key (rows read through the base manager, so rows a default
manager hides count; names resolved by ``key_for``, so ``docs//a.txt`` is
``docs/a.txt``). Only the referenced keys are held in memory; the stored
keys are streamed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

from django.core.exceptions import SuspiciousFileOperation
from django.db.models import FileField, Model

from storages_mogile.backends.mogile import STAGING_DIR
from storages_mogile.client import Client
from storages_mogile.clusters import KeySpace, field_label, key_spaces, mogilefs_fields
from storages_mogile.quarantine import Quarantine


class Kind(enum.Enum):
    """What a stored key is to the audit."""

    REFERENCED = "referred to"
    ORPHAN = "orphans"
    STAGING = "staging uploads"
    KEPT = "kept (in the key space of a storage no model field uses)"
    QUARANTINED = "quarantined"


@dataclass(frozen=True)
class FieldRows:
    """A model's FileField, and the key space of its storage."""

    model: type[Model]
    field: FileField
    space: KeySpace

    @property
    def label(self) -> str:
        return field_label(self.model, self.field)

    def names(self) -> Iterator[str]:
        """Every name the rows hold, rows a default manager hides included."""
        values = self.model._base_manager.values_list(self.field.attname, flat=True)
        return (value for value in values.iterator() if value)

    def key_of(self, name: str) -> str | None:
        """The key the storage reads ``name`` as; None for a name it refuses."""
        try:
            return self.space.storage.key_for(name)
        except SuspiciousFileOperation:
            return None

    def refers_to(self, key: str) -> bool:
        """Whether a row holds, now, a name the storage reads as ``key``."""
        if not self.space.holds(key):
            return False
        # Every spelling of a name (docs//a.txt, docs\\a.txt, ./docs/a.txt)
        # holds its last part as it is: ask for those rows, then resolve.
        last = key[len(self.space.prefix) :].rpartition("/")[2]
        rows = self.model._base_manager.filter(**{f"{self.field.attname}__contains": last})
        values = rows.values_list(self.field.attname, flat=True)
        return any(self.key_of(value) == key for value in values.iterator() if value)


@dataclass
class ClusterAudit:
    """The storages that reach one MogileFS domain and the fields whose rows name its keys."""

    spaces: list[KeySpace]
    fields: list[FieldRows] = field(default_factory=list)
    #: referenced key -> the field a row of which names it
    referenced: dict[str, str] = field(default_factory=dict)
    #: (field, name) of rows holding a name their storage refuses
    refused: list[tuple[str, str]] = field(default_factory=list)

    @property
    def client(self) -> Client:
        return self.fields[0].space.storage.client

    def describe(self) -> str:
        storage = self.fields[0].space.storage
        spaces = ", ".join(f"{space.prefix!r} {space.where}" for space in self.spaces)
        return f"domain {storage.domain} on {', '.join(storage._trackers)}: key spaces {spaces}"

    def read_rows(self) -> None:
        """Gather the referenced keys (and the refused names) from the database."""
        for rows in self.fields:
            for name in rows.names():
                key = rows.key_of(name)
                if key is None:
                    self.refused.append((rows.label, name))
                else:
                    self.referenced.setdefault(key, rows.label)

    def keys(self) -> Iterator[str]:
        """Every stored key in a field's key space, streamed from the trackers."""
        prefixes = sorted({rows.space.prefix for rows in self.fields})
        roots = [p for p in prefixes if not any(p != q and p.startswith(q) for q in prefixes)]
        for root in roots:
            yield from self.client.iter_keys(root or None)

    def classify(self, key: str) -> tuple[Kind, str | None]:
        """What ``key`` is, and the storage or field that makes it so."""
        if key in self.referenced:
            return Kind.REFERENCED, self.referenced[key]
        if Quarantine.holds(key):
            return Kind.QUARANTINED, None
        for space in self.spaces:
            if space.holds(key) and key[len(space.prefix) :].startswith(f"{STAGING_DIR}/"):
                return Kind.STAGING, space.where
        for space in self.unowned:
            if space.holds(key):
                return Kind.KEPT, space.where
        return Kind.ORPHAN, None

    @cached_property
    def unowned(self) -> list[KeySpace]:
        """The key spaces of storages no model field uses (a prefix no field has)."""
        used = {rows.space.prefix for rows in self.fields}
        return [space for space in self.spaces if space.prefix not in used]

    def refers_to(self, key: str) -> bool:
        """Whether a row of any field refers to ``key`` now (asks the database)."""
        return any(rows.refers_to(key) for rows in self.fields)


def project_audits() -> list[ClusterAudit]:
    """One audit per cluster that some model field stores in."""
    spaces = key_spaces()
    audits: dict[int, ClusterAudit] = {}
    for space in spaces:
        audits.setdefault(space.cluster, ClusterAudit([])).spaces.append(space)
    by_where = {space.where: space for space in spaces}
    for model, model_field in mogilefs_fields():
        found = by_where.get(field_label(model, model_field))
        if found is not None:  # a storage without domain or trackers reaches no cluster
            audits[found.cluster].fields.append(FieldRows(model, model_field, found))
    return [audit for audit in audits.values() if audit.fields]

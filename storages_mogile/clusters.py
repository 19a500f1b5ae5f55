"""The MogileFS clusters a project uses: trackers, domain, and the classes in use.

The system checks and the management commands look at the same thing: every
MogileFS storage of the project (the ``STORAGES`` entries and every model
field's), grouped by the trackers and domain they point at.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from django.apps import apps
from django.conf import settings
from django.core.files.storage import storages
from django.db.models import FileField

from storages_mogile.backends.mogile import MogileFSStorage, mogilefs_aliases


@dataclass
class Cluster:
    """One MogileFS domain on one set of trackers, and who uses which class there."""

    trackers: tuple[str, ...]
    domain: str
    #: class name -> where it is used first (a STORAGES entry or app.Model.field)
    classes: dict[str, str] = field(default_factory=dict)


def mogilefs_storages() -> Iterator[tuple[str, MogileFSStorage]]:
    """Every MogileFS storage of the project, with where it is defined."""
    for alias in mogilefs_aliases():
        storage = storages[alias]
        if isinstance(storage, MogileFSStorage):
            yield f"STORAGES[{alias!r}]", storage
    for model in apps.get_models():
        for model_field in model._meta.get_fields():
            if isinstance(model_field, FileField) and isinstance(
                model_field.storage, MogileFSStorage
            ):
                yield f"{model._meta.label}.{model_field.name}", model_field.storage


def project_clusters() -> list[Cluster]:
    """The configured clusters (storages without domain or trackers are left out)."""
    found: dict[tuple[tuple[str, ...], str], Cluster] = {}
    for where, storage in mogilefs_storages():
        if storage.domain and storage._trackers:
            key = (storage._trackers, storage.domain)
            cluster = found.setdefault(key, Cluster(storage._trackers, storage.domain))
            cluster.classes.setdefault(storage.mogile_class or "default", where)
    return list(found.values())


def declared_classes() -> dict[str, int]:
    """``MOGILEFS_CLASSES``: the copies (mindevcount) of each replication class."""
    return dict(getattr(settings, "MOGILEFS_CLASSES", {}))


def referenced_names() -> dict[MogileFSStorage, tuple[list[str], set[str]]]:
    """The names the database refers to, per MogileFS namespace.

    Fields whose storages share trackers, domain and key prefix share one
    namespace, so their names are gathered together (one storage stands for
    them): ``{storage: (["app.Model.field", ...], {name, ...})}``.
    """
    namespaces: dict[tuple[tuple[str, ...], str, str], MogileFSStorage] = {}
    found: dict[MogileFSStorage, tuple[list[str], set[str]]] = {}
    for model in apps.get_models():
        for model_field in model._meta.get_fields():
            storage = getattr(model_field, "storage", None)
            if not isinstance(model_field, FileField) or not isinstance(storage, MogileFSStorage):
                continue
            key = (storage._trackers, storage.domain or "", storage.key_prefix)
            storage = namespaces.setdefault(key, storage)
            fields, names = found.setdefault(storage, ([], set()))
            fields.append(f"{model._meta.label}.{model_field.name}")
            values = model._default_manager.values_list(model_field.attname, flat=True)
            names.update(value for value in values.iterator() if value)
    return found

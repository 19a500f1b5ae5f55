"""The MogileFS clusters a project uses: trackers, domain, and the classes in use.

The system checks and the management commands look at the same thing: every
MogileFS storage of the project (the ``STORAGES`` entries and every model
field's), grouped by the trackers and domain they point at.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import storages
from django.db.models import FileField

from storages_mogile.backends.mogile import MogileFSStorage, mogilefs_aliases

#: The hash types mogilefsd 2.73 accepts for a class.
HASH_TYPES = ("MD5", "NONE")


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


@dataclass(frozen=True)
class DeclaredClass:
    """A class as ``MOGILEFS_CLASSES`` declares it: its copies (mindevcount), and its
    hash type (``"MD5"`` or ``"NONE"``) when given; ``None`` leaves the cluster's."""

    copies: int
    hashtype: str | None = None


def declared_classes() -> dict[str, DeclaredClass]:
    """``MOGILEFS_CLASSES``: ``{"avatar": 3}``, or ``{"avatar": {"copies": 3, "hashtype": "MD5"}}``.

    ImproperlyConfigured names a declaration that is neither.
    """
    declared = getattr(settings, "MOGILEFS_CLASSES", None) or {}
    if not isinstance(declared, Mapping):
        raise ImproperlyConfigured(
            f"MOGILEFS_CLASSES must be a dict of class names, got {type(declared).__name__}."
        )
    return {name: _declared(name, value) for name, value in declared.items()}


def _declared(name: str, value: Any) -> DeclaredClass:
    where = f"MOGILEFS_CLASSES[{name!r}]"
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"copies", "hashtype"})
        if unknown or "copies" not in value:
            raise ImproperlyConfigured(
                f"{where} = {value!r}: give 'copies' (and optionally 'hashtype'), "
                f"e.g. {{'copies': 2, 'hashtype': 'MD5'}}"
                + (f"; unknown key(s): {', '.join(map(repr, unknown))}." if unknown else ".")
            )
        copies, hashtype = value["copies"], value.get("hashtype")
    else:
        copies, hashtype = value, None
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ImproperlyConfigured(
            f"{where}: the copies must be a whole number of at least 1, got {copies!r}."
        )
    if hashtype is not None and hashtype not in HASH_TYPES:
        raise ImproperlyConfigured(
            f"{where}: hashtype {hashtype!r} is not one MogileFS knows; use "
            f"{' or '.join(map(repr, HASH_TYPES))}."
        )
    return DeclaredClass(copies, hashtype)


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


def undeclared_classes(
    used: Mapping[str, str], declared: Mapping[str, DeclaredClass]
) -> list[tuple[str, str]]:
    """``(class, where)`` for each class in ``used`` (class -> where it is used) that
    ``MOGILEFS_CLASSES`` does not declare, sorted. ``default`` needs no declaration:
    every domain has it."""
    return sorted(
        (cls, where) for cls, where in used.items() if cls != "default" and cls not in declared
    )

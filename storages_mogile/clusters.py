"""The MogileFS clusters a project uses: trackers, domain, and the classes in use.

The system checks and the management commands look at the same thing: every
MogileFS storage of the project (the ``STORAGES`` entries and every model
field's), grouped by the MogileFS domain they reach. Storages reach the same
domain when they name the same domain on trackers that share an address,
however each spells them (``[t1, t2]`` and ``[t1]``, ``localhost`` and
``127.0.0.1``): such storages share one key namespace, whatever their
``key_prefix``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import storages
from django.db.models import FileField, Model

from storages_mogile.backends.mogile import MogileFSStorage, mogilefs_aliases
from storages_mogile.client.trackers import split_address

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
    for model, model_field in mogilefs_fields():
        yield field_label(model, model_field), model_field.storage


def mogilefs_fields() -> Iterator[tuple[type[Model], FileField]]:
    """Every model FileField (and ImageField) whose storage is a MogileFS storage."""
    for model in apps.get_models():
        for model_field in model._meta.get_fields():
            if isinstance(model_field, FileField) and isinstance(
                model_field.storage, MogileFSStorage
            ):
                yield model, model_field


def field_label(model: type[Model], model_field: FileField) -> str:
    """``app_label.Model.field``."""
    return f"{model._meta.label}.{model_field.name}"


def project_clusters() -> list[Cluster]:
    """The configured clusters (storages without domain or trackers are left out)."""
    found: dict[int, Cluster] = {}
    for space in key_spaces():
        storage = space.storage
        cluster = found.setdefault(space.cluster, Cluster(storage._trackers, storage.domain))
        cluster.classes.setdefault(storage.mogile_class or "default", space.where)
    return list(found.values())


@dataclass(frozen=True)
class KeySpace:
    """The keys one storage names: every key of its cluster starting with its key prefix.

    ``cluster`` numbers the MogileFS domain the storage reaches: storages
    with the same number share one key namespace.
    """

    where: str
    storage: MogileFSStorage
    cluster: int

    @property
    def prefix(self) -> str:
        return self.storage.key_prefix

    def holds(self, key: str) -> bool:
        """Whether ``key`` is a key this storage can name."""
        return key.startswith(self.prefix)

    def overlaps(self, other: KeySpace) -> bool:
        """Whether some key is named by both storages (one prefix starts the other)."""
        return self.cluster == other.cluster and (
            self.prefix.startswith(other.prefix) or other.prefix.startswith(self.prefix)
        )


def key_spaces(
    storages: Iterable[tuple[str, MogileFSStorage]] | None = None,
) -> list[KeySpace]:
    """The key space of each storage (all of the project's by default), numbered by cluster.

    Storages without a domain or trackers reach no cluster and are left out.
    """
    configured = [
        (where, storage)
        for where, storage in (mogilefs_storages() if storages is None else storages)
        if storage.domain and storage._trackers
    ]
    nodes = [_nodes(storage.domain, storage._trackers) for _, storage in configured]
    clusters = _Clusters()
    for each in nodes:
        clusters.join(each)
    return [
        KeySpace(where, storage, clusters.number(each[0]))
        for (where, storage), each in zip(configured, nodes)
    ]


_Node = tuple[str, str]  # (domain, tracker endpoint)


class _Clusters:
    """A union-find over (domain, tracker endpoint): the trackers a storage names serve
    one namespace per domain, so ``[t1, t2]`` and ``[t1]`` end up in one cluster."""

    def __init__(self) -> None:
        self._parent: dict[_Node, _Node] = {}
        self._numbers: dict[_Node, int] = {}

    def join(self, nodes: list[_Node]) -> None:
        """Record that ``nodes`` (one storage's) are one namespace."""
        for node in nodes[1:]:
            self._parent[self._root(node)] = self._root(nodes[0])

    def number(self, node: _Node) -> int:
        """The number of ``node``'s cluster, once every storage has joined."""
        return self._numbers.setdefault(self._root(node), len(self._numbers))

    def _root(self, node: _Node) -> _Node:
        while (parent := self._parent.setdefault(node, node)) != node:
            node = parent
        return node


def _nodes(domain: str, trackers: Iterable[str]) -> list[_Node]:
    return [(domain, endpoint) for tracker in trackers for endpoint in sorted(_endpoints(tracker))]


def _endpoints(tracker: str) -> set[str]:
    """The addresses a tracker's ``host:port`` resolves to (the spelling if it does not)."""
    host, port = split_address(tracker)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return {f"{host.lower()}:{port}"}
    return {f"{info[4][0]}:{port}" for info in infos}


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

"""The project's serve routes, and the keys each must refuse.

A storage's files are private when it signs its URLs (``signed_urls``) or
when a route serving it has an access hook. Storages whose key prefixes
nest on one MogileFS domain (``clusters.key_spaces()``) name the same keys,
so a route of one would hand out the other's private files without their
signature or hook. ``KeyAccess.refuses()`` tells the view which keys a
route answers 404 for; check E016 reports the same overlaps. Both are worked
out once per settings change: the view pays a prefix comparison.

A tracker on MySQL or MariaDB compares keys in the database's collation
(``utf8mb4_general_ci`` by default): ``SIGNED/x``, ``signéd/x`` and
``ßigned/x`` there name the file ``signed/x``. So a key is also refused when
such a collation may call it one under a private prefix.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import storages
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import URLPattern, URLResolver, get_resolver

from storages_mogile.backends.mogile import mogilefs_aliases
from storages_mogile.clusters import KeySpace, key_spaces
from storages_mogile.serving.options import AccessHook, ServeOptions

SIGNATURE = "a signature"
ACCESS_HOOK = "the access hook"

_Zone = tuple[int, str]  # (cluster, key prefix): the keys of one or more storages


@dataclass(frozen=True)
class Route:
    """A URL pattern of ROOT_URLCONF routed to the serve view, with its resolved options."""

    pattern: str
    options: ServeOptions


@dataclass(frozen=True)
class Exposure:
    """Keys of a private key space that a route serving another storage would hand out."""

    route: Route
    served: KeySpace  # the route's storage
    private: tuple[KeySpace, ...]  # the storages naming the private keys
    needs: str  # SIGNATURE or ACCESS_HOOK, which the route does not ask for

    @property
    def prefix(self) -> str:
        """The private keys start with it."""
        return self.private[0].prefix


def serve_routes() -> list[Route]:
    """Every pattern of ROOT_URLCONF that calls the serve view, with its options.

    A pattern whose options do not resolve is left out: every request there fails anyway.
    """
    return list(_walk(get_resolver().url_patterns, "", {}))


def _walk(patterns: Sequence[Any], prefix: str, kwargs: dict[str, Any]) -> Iterator[Route]:
    from storages_mogile.views import (  # the views import this module
        aserve,
        serve,
        serve_mogilefs_file,
    )

    for entry in patterns:
        if isinstance(entry, URLResolver):
            inherited = {**kwargs, **entry.default_kwargs}
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), inherited)
        elif isinstance(entry, URLPattern) and entry.callback in (
            serve,
            aserve,
            serve_mogilefs_file,
        ):
            try:
                options = ServeOptions.resolve({**kwargs, **entry.default_args})
            except ImproperlyConfigured:
                continue
            yield Route(prefix + str(entry.pattern), options)


class KeyAccess:
    """The project's key spaces, which of them are private, and what guards them."""

    def __init__(self, spaces: list[KeySpace], routes: list[Route]) -> None:
        self.routes = routes
        self._spaces = spaces
        self._aliases = set(mogilefs_aliases())
        self._signed = {_zone(space) for space in spaces if space.storage.signed_urls}
        self._hooks: dict[_Zone, list[AccessHook]] = {}
        for route in routes:
            space = self.space_of(route.options.storage)
            if space is not None and route.options.access is not None:
                self._hooks.setdefault(_zone(space), []).append(route.options.access)
        self._refusals: dict[tuple[str, int], tuple[AccessHook | None, _Refusal]] = {}

    def space_of(self, alias: str) -> KeySpace | None:
        """The key space of ``STORAGES[alias]`` (None: no MogileFS storage with a cluster)."""
        if alias not in self._aliases:
            return None
        storage = storages[alias]
        return next((space for space in self._spaces if space.storage is storage), None)

    def exposures(self, route: Route) -> list[Exposure]:
        """The private key spaces ``route`` reaches without asking what guards them."""
        served = self.space_of(route.options.storage)
        if served is None:
            return []
        found = []
        for zone in dict.fromkeys(map(_zone, self._spaces)):
            needs = self._unmet_guard(served, route.options.access, zone)
            private = tuple(space for space in self._spaces if _zone(space) == zone)
            if needs and _may_overlap(served, private[0]):
                found.append(Exposure(route, served, private, needs))
        return found

    def refuses(self, options: ServeOptions, key: str) -> bool:
        """Whether the view, with these options, answers 404 for ``key``."""
        memo_key = (options.storage, id(options.access))
        if memo_key not in self._refusals:
            prefixes = [exposure.prefix for exposure in self.exposures(Route("", options))]
            # The hook is kept with its refusal so that its id is never reused.
            self._refusals[memo_key] = (options.access, _Refusal(prefixes))
        return self._refusals[memo_key][1].refuses(key)

    def _unmet_guard(self, served: KeySpace, access: AccessHook | None, zone: _Zone) -> str | None:
        # A signature of the served storage is one of the zone's when it
        # is the same key space: the salt is the domain and key prefix.
        if zone in self._signed and not (served.storage.signed_urls and _zone(served) == zone):
            return SIGNATURE
        hooks = self._hooks.get(zone, [])
        if hooks and not any(hook is access for hook in hooks):
            return ACCESS_HOOK
        return None


def _zone(space: KeySpace) -> _Zone:
    return (space.cluster, space.prefix)


def _may_overlap(one: KeySpace, other: KeySpace) -> bool:
    """``KeySpace.overlaps()`` as a lenient collation may see the prefixes."""
    first, second = key_skeleton(one.prefix), key_skeleton(other.prefix)
    return one.cluster == other.cluster and (
        may_start_with(first, second) or may_start_with(second, first)
    )


class _Refusal:
    """The private key prefixes one route refuses, as they are and as skeletons."""

    def __init__(self, prefixes: list[str]) -> None:
        self._prefixes = tuple(prefixes)
        self._skeletons = [key_skeleton(prefix) for prefix in prefixes]

    def refuses(self, key: str) -> bool:
        if key.startswith(self._prefixes):
            return True
        if not self._skeletons:
            return False
        skeleton = key_skeleton(key)
        return any(may_start_with(skeleton, prefix) for prefix in self._skeletons)


# Characters a collation may skip: combining marks, controls, format characters.
_IGNORABLE = frozenset({"Mn", "Mc", "Me", "Cc", "Cf"})
_ASCII_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def key_skeleton(key: str) -> str:
    """``key`` as a lenient collation may see it: compatibility forms decomposed
    (fullwidth, ligatures), marks, controls and format characters left out, ASCII
    letters in lower case, trailing spaces dropped (PAD SPACE)."""
    if key.isascii():  # most keys: only controls to drop (the view's hot path)
        return _ASCII_CONTROLS.sub("", key).lower().rstrip(" ")
    kept = (
        char
        for char in unicodedata.normalize("NFKD", key)
        if unicodedata.category(char) not in _IGNORABLE
    )
    return "".join(char.lower() if char.isascii() else char for char in kept).rstrip(" ")


def may_start_with(key: str, prefix: str) -> bool:
    """Whether a lenient collation may call the key starting with ``prefix`` (both
    skeletons): ASCII characters compare as they are, and any other character, on
    either side, may stand for one or two characters of the other (``ß`` is ``s``
    in utf8mb4_general_ci and ``ss`` in the Unicode collations, ``ı`` is ``i``)."""
    if key.isascii() and prefix.isascii():
        return key.startswith(prefix)

    @functools.cache
    def match(i: int, j: int) -> bool:
        if j >= len(prefix):
            return True
        if i >= len(key):
            return False
        if key[i].isascii() and prefix[j].isascii():
            return key[i] == prefix[j] and match(i + 1, j + 1)
        return match(i + 1, j + 1) or match(i + 1, j + 2) or match(i + 2, j + 1)

    return match(0, 0)


@functools.cache
def key_access() -> KeyAccess:
    """The project's ``KeyAccess``, worked out on first use after each settings change."""
    return KeyAccess(key_spaces(), serve_routes())


@receiver(setting_changed)
def _forget_key_access(**kwargs: Any) -> None:
    # Storages, their options, the URLconf and the serve options are all settings.
    key_access.cache_clear()

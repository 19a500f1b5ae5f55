"""The project's serve routes, and the keys each must refuse.

A storage's files are private when it signs its URLs (``signed_urls``) or
when a route serving it has an access hook. Storages whose key prefixes
nest on one MogileFS domain (``clusters.key_spaces()``) name the same keys,
so a route of one would hand out the other's private files without their
signature or hook. ``refused_prefixes()`` gives the view the key prefixes a
route answers 404 for; check E016 reports the same overlaps. Both are worked
out once per settings change: the view pays one ``str.startswith``.
"""

from __future__ import annotations

import functools
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
    from storages_mogile.views import serve, serve_mogilefs_file  # the views import this module

    for entry in patterns:
        if isinstance(entry, URLResolver):
            inherited = {**kwargs, **entry.default_kwargs}
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), inherited)
        elif isinstance(entry, URLPattern) and entry.callback in (serve, serve_mogilefs_file):
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
        self._refused: dict[tuple[str, int], tuple[AccessHook | None, tuple[str, ...]]] = {}

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
            if needs and served.overlaps(private[0]):
                found.append(Exposure(route, served, private, needs))
        return found

    def refused_prefixes(self, options: ServeOptions) -> tuple[str, ...]:
        """The key prefixes the view answers 404 for with these options (memoized)."""
        memo_key = (options.storage, id(options.access))
        if memo_key not in self._refused:
            route = Route("", options)
            prefixes = tuple(exposure.prefix for exposure in self.exposures(route))
            # The hook is kept with its prefixes so that its id is never reused.
            self._refused[memo_key] = (options.access, prefixes)
        return self._refused[memo_key][1]

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


@functools.cache
def key_access() -> KeyAccess:
    """The project's ``KeyAccess``, worked out on first use after each settings change."""
    return KeyAccess(key_spaces(), serve_routes())


@receiver(setting_changed)
def _forget_key_access(**kwargs: Any) -> None:
    # Storages, their options, the URLconf and the serve options are all settings.
    key_access.cache_clear()

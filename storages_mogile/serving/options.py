"""Options of the serving view: ``MOGILEFS_SERVE_*`` settings, overridable per URL pattern.

Every option has a setting; the keyword arguments of a URL pattern
(``serve_patterns(mode="nginx")`` or a ``path(..., serve, {"mode": "nginx"})``)
override it. Options are resolved on every request from the settings, which
are read once and again after every ``setting_changed`` signal, so
``override_settings`` takes effect at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.core.files.storage import storages
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils.module_loading import import_string

from storages_mogile.backends.mogile import MogileFSStorage

PERLBAL = "perlbal"
NGINX = "nginx"
STREAM = "stream"
AUTO = "auto"
MODES = (PERLBAL, NGINX, STREAM, AUTO)

# Option name -> (setting, default). No mode setting defers to the legacy
# SERVE_WITH_PERLBAL setting.
OPTION_SETTINGS: dict[str, tuple[str, Any]] = {
    "mode": ("MOGILEFS_SERVE_MODE", None),
    "storage": ("MOGILEFS_SERVE_STORAGE", "default"),
    "headers": ("MOGILEFS_SERVE_HEADERS", {}),
    "attachment": ("MOGILEFS_SERVE_ATTACHMENT", False),
    "access": ("MOGILEFS_SERVE_ACCESS", None),
    "nginx_location": ("MOGILEFS_SERVE_NGINX_LOCATION", "/_mogilefs/"),
    "reproxy_cache_for": ("MOGILEFS_SERVE_REPROXY_CACHE_FOR", None),
    "trust_proxy": ("MOGILEFS_SERVE_TRUST_PROXY", False),
}

# An ``async def`` hook (returning an awaitable bool) is awaited by the async view.
AccessHook = Callable[[HttpRequest, str], Any]


@dataclass(frozen=True)
class ServeOptions:
    """How the view serves: the resolved, checked options.

    ``mode``: ``perlbal`` (``X-REPROXY-URL``), ``nginx`` (``X-Accel-Redirect``),
    ``stream`` (Django sends the bytes) or ``auto`` (``perlbal`` when a
    trusted Perlbal announces ``X-Proxy-Capabilities: reproxy-file``, else
    ``stream``). ``storage``: the ``STORAGES`` alias served. ``headers``:
    extra response headers. ``attachment``: send ``Content-Disposition:
    attachment``. ``access``: ``access(request, name) -> bool`` deciding per
    request. ``nginx_location``: the internal location ``X-Accel-Redirect``
    names. ``reproxy_cache_for``: seconds Perlbal may cache the answer
    (never with an access hook: check E017). ``trust_proxy``: believe the
    proxy-capabilities header (``auto``).
    """

    mode: str
    storage: str
    headers: Mapping[str, str]
    attachment: bool
    access: AccessHook | None
    nginx_location: str
    reproxy_cache_for: int | None
    trust_proxy: bool

    @classmethod
    def resolve(cls, overrides: Mapping[str, Any]) -> ServeOptions:
        """The options from ``overrides`` (URL keyword arguments), then settings, then defaults."""
        unknown = sorted(set(overrides) - set(OPTION_SETTINGS))
        if unknown:
            raise ImproperlyConfigured(
                f"Unknown option(s) {', '.join(map(repr, unknown))} for the MogileFS serve view. "
                f"Valid options: {', '.join(sorted(OPTION_SETTINGS))}."
            )
        values = {**_from_settings(), **overrides}
        values["access"] = _load_access(values["access"])
        options = cls(**values)
        options._check()
        return options

    def _check(self) -> None:
        if self.mode not in MODES:
            raise ImproperlyConfigured(
                f"Unknown MogileFS serve mode {self.mode!r} (MOGILEFS_SERVE_MODE or the view's "
                f"'mode' argument): use one of {', '.join(map(repr, MODES))}."
            )
        if self.mode == AUTO and not self.trust_proxy:
            raise ImproperlyConfigured(
                "MOGILEFS_SERVE_MODE 'auto' trusts the X-Proxy-Capabilities request header, "
                "which any client can send: set MOGILEFS_SERVE_TRUST_PROXY = True only when "
                "every request reaches Django through your Perlbal, or choose a fixed mode."
            )
        if not isinstance(self.headers, Mapping) or not all(
            isinstance(name, str) and isinstance(value, str) for name, value in self.headers.items()
        ):
            raise ImproperlyConfigured(
                f"MOGILEFS_SERVE_HEADERS must map header names to string values, "
                f"got {self.headers!r}."
            )
        if not self.nginx_location.startswith("/"):
            raise ImproperlyConfigured(
                f"MOGILEFS_SERVE_NGINX_LOCATION {self.nginx_location!r} must be a path "
                "starting with '/', naming an internal nginx location."
            )
        self._check_reproxy_cache()

    def _check_reproxy_cache(self) -> None:
        if self.reproxy_cache_for is None:
            return
        if isinstance(self.reproxy_cache_for, bool) or not isinstance(self.reproxy_cache_for, int):
            raise ImproperlyConfigured(
                f"MOGILEFS_SERVE_REPROXY_CACHE_FOR must be a number of seconds (int) or None, "
                f"got {self.reproxy_cache_for!r}."
            )
        if self.reproxy_cache_for <= 0:
            raise ImproperlyConfigured(
                f"MOGILEFS_SERVE_REPROXY_CACHE_FOR must be positive, got {self.reproxy_cache_for}."
            )

    def get_storage(self) -> MogileFSStorage:
        """The MogileFS storage named by ``storage``."""
        storage = storages[self.storage]
        if not isinstance(storage, MogileFSStorage):
            raise ImproperlyConfigured(
                f"STORAGES[{self.storage!r}] is a {type(storage).__qualname__}, not a "
                "MogileFSStorage: point MOGILEFS_SERVE_STORAGE (or the view's 'storage' "
                "argument) at the alias of a MogileFS storage."
            )
        return storage

    def mode_for(self, request: HttpRequest) -> str:
        """The mode that serves ``request``; ``auto`` decides by the proxy's capabilities."""
        if self.mode != AUTO:
            return self.mode
        capabilities = request.headers.get("X-Proxy-Capabilities", "").replace(",", " ").split()
        return PERLBAL if "reproxy-file" in capabilities else STREAM

    def check_access(self, request: HttpRequest, name: str) -> None:
        """Raise PermissionDenied (a 403) when the access hook refuses ``name``.

        An ``async def`` hook runs in an event loop of its own (``async_to_sync``).
        """
        if self.access is None:
            return
        hook = async_to_sync(self.access) if iscoroutinefunction(self.access) else self.access
        self._refuse_unless(hook(request, name), name)

    async def acheck_access(self, request: HttpRequest, name: str) -> None:
        """``check_access`` in an event loop: an ``async def`` hook is awaited, any other
        runs in a thread (``sync_to_async``: it may use the ORM)."""
        if self.access is None:
            return
        if iscoroutinefunction(self.access):
            allowed = await self.access(request, name)
        else:
            allowed = await sync_to_async(self.access)(request, name)
        self._refuse_unless(allowed, name)

    def _refuse_unless(self, allowed: bool, name: str) -> None:
        if not allowed:
            raise PermissionDenied(f"access to {name!r} refused by {self.access!r}")


@functools.cache
def _from_settings() -> dict[str, Any]:
    """Every option's value from its setting, or its default.

    Kept until a setting changes: looking up an unset setting raises and
    catches an AttributeError, which would otherwise cost every request.
    """
    values = {
        name: getattr(settings, setting, default)
        for name, (setting, default) in OPTION_SETTINGS.items()
    }
    if values["mode"] is None:
        values["mode"] = PERLBAL if getattr(settings, "SERVE_WITH_PERLBAL", False) else STREAM
    return values


@receiver(setting_changed)
def _forget_settings(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("MOGILEFS_SERVE_") or setting == "SERVE_WITH_PERLBAL":
        _from_settings.cache_clear()


def _load_access(value: Any) -> AccessHook | None:
    """The access hook from a callable or its dotted path."""
    if value is None or callable(value):
        return value
    if isinstance(value, str):
        try:
            return import_string(value)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"MOGILEFS_SERVE_ACCESS {value!r} cannot be imported: {exc}"
            ) from exc
    raise ImproperlyConfigured(
        f"MOGILEFS_SERVE_ACCESS must be a callable access(request, name) -> bool or its "
        f"dotted path, got {value!r}."
    )

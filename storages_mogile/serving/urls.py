"""``serve_patterns()``: URL patterns for the serving view, with their options.

Django runs a view as it is written: a synchronous view under ASGI in a
thread per request, an ``async def`` view under WSGI in an event loop made
for the request. One URLconf serves under both, so a serve pattern picks
the view when it resolves: Django's ASGI handler resolves in the thread of
its event loop, the WSGI handler (and the sync test client) in a thread
without one. Under ASGI the pattern resolves to ``aserve``, otherwise to
``serve``.
"""

from __future__ import annotations

import asyncio
import functools
import re
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.urls import ResolverMatch, URLPattern
from django.urls.resolvers import RegexPattern

from storages_mogile.serving.options import ServeOptions
from storages_mogile.views import aserve, serve


class ServePattern(URLPattern):
    """A pattern of the ``serve`` view that resolves to ``aserve`` in an event loop's thread.

    ``serve`` still runs (in a thread) without the asyncio client (the
    ``async`` extra, aiohttp, is not installed), and with ``ATOMIC_REQUESTS``
    on a database: Django refuses to run an async view in a transaction.
    """

    def resolve(self, path: str) -> ResolverMatch | None:
        match = super().resolve(path)
        if (
            match is None
            or not _in_event_loop()
            or not async_client_available()
            or _atomic_requests()
        ):
            return match
        return ResolverMatch(
            aserve,
            match.args,
            match.kwargs,
            match.url_name,
            route=match.route,
            captured_kwargs=match.captured_kwargs,
            extra_kwargs=match.extra_kwargs,
        )


def _in_event_loop() -> bool:
    """Whether this thread runs an event loop (Django's ASGI handler resolves there)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@functools.cache
def async_client_available() -> bool:
    """Whether the asyncio client can be imported (it needs aiohttp)."""
    try:
        import storages_mogile.client.aioclient  # noqa: F401
    except ImportError:
        return False
    return True


def _atomic_requests() -> bool:
    return any(database.get("ATOMIC_REQUESTS") for database in connections.settings.values())


def serve_patterns(*, prefix: str | None = None, **options: Any) -> list[URLPattern]:
    """The pattern serving every name under ``prefix`` with the view options ``options``.

    ``urlpatterns += serve_patterns(storage="private", attachment=True)``.

    ``prefix`` defaults to the path of the storage's ``base_url``, so that
    ``storage.url(name)`` lands on this pattern. The options are checked now,
    so a misconfiguration fails when the URLconf loads.
    """
    resolved = ServeOptions.resolve(options)
    if prefix is None:
        prefix = _storage_prefix(resolved)
    route = re.escape(prefix.lstrip("/"))
    # (?s:): a name may hold a line feed (save() accepts it), and "." alone stops there.
    pattern = RegexPattern(rf"^{route}(?P<name>(?s:.+))\Z", is_endpoint=True)
    return [ServePattern(pattern, serve, options)]


def _storage_prefix(options: ServeOptions) -> str:
    base_url = options.get_storage().base_url
    if not base_url:
        raise ImproperlyConfigured(
            f"STORAGES[{options.storage!r}] has no base_url to serve files under: set "
            "MOGILEFS_MEDIA_URL (or the storage's 'base_url' OPTION), or pass "
            "serve_patterns(prefix=...)."
        )
    path = urlsplit(base_url).path
    if not path.endswith("/"):
        raise ImproperlyConfigured(
            f"The base_url {base_url!r} of STORAGES[{options.storage!r}] must end with '/'."
        )
    return path

"""``serve_patterns()``: URL patterns for the serving view, with their options."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.urls import URLPattern, re_path

from storages_mogile.serving.options import ServeOptions
from storages_mogile.views import serve


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
    return [re_path(rf"^{route}(?P<name>(?s:.+))\Z", serve, options)]


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

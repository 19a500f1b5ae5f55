"""Responses that hand the storage-node URLs to a proxy, which fetches the bytes.

Both carry no body: Perlbal or nginx replaces it with the storage node's
answer, passing the client's ``Range`` on. They name internal URLs, so they
must only ever reach a proxy configured for them (docs/serving.md).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from django.http import HttpRequest, HttpResponse

from storages_mogile.backends.mogile import parse_expires
from storages_mogile.serving.files import ServedFile
from storages_mogile.serving.options import ServeOptions

# The nginx configuration in docs/serving.md tries this many paths in turn.
NGINX_PATH_HEADERS = 3


def perlbal_response(
    request: HttpRequest, file: ServedFile, headers: Mapping[str, str], options: ServeOptions
) -> HttpResponse:
    """An ``X-REPROXY-URL`` answer listing every path, for Perlbal to try in order."""
    response = HttpResponse(headers=headers)
    response["X-REPROXY-URL"] = " ".join(file.paths)
    # Perlbal compares the expected size with the node's Content-Length and
    # moves to the next path on a mismatch (a damaged copy), which a ranged
    # answer always is.
    if "range" not in request.headers:
        response["X-REPROXY-EXPECTED-SIZE"] = str(file.size)
    seconds = _cache_seconds(request, options)
    if seconds:
        # "<seconds>; <names of the headers Perlbal replays from its cache>"
        response["X-REPROXY-CACHE-FOR"] = f"{seconds}; {' '.join(headers)}"
    return response


def _cache_seconds(request: HttpRequest, options: ServeOptions) -> int | None:
    """How long Perlbal may cache the answer: never past a signed URL's expiry,
    and not at all behind an access hook (Perlbal would answer from its cache
    without asking the hook; check E017 reports the combination)."""
    seconds = options.reproxy_cache_for
    if seconds is None or options.access is not None:
        return None
    expires = parse_expires(request.GET.get("expires"))
    if expires is not None:
        seconds = min(seconds, expires - int(time.time()))
    return seconds if seconds > 0 else None


def nginx_response(
    request: HttpRequest, file: ServedFile, headers: Mapping[str, str], options: ServeOptions
) -> HttpResponse:
    """An ``X-Accel-Redirect`` to the internal location, with the paths in headers.

    The location proxies to ``X-MogileFS-Path-1`` and, when that fails, to
    ``-2`` and ``-3``.
    """
    response = HttpResponse(headers=headers)
    response["X-Accel-Redirect"] = options.nginx_location
    for number, path in enumerate(file.paths[:NGINX_PATH_HEADERS], start=1):
        response[f"X-MogileFS-Path-{number}"] = path
    return response

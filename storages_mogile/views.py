"""The views serving files of a MogileFS storage at its URL prefix.

``serve`` answers GET and HEAD for a storage name in one of three ways,
chosen by ``MOGILEFS_SERVE_MODE`` (or the URL pattern's ``mode``): hand the
storage-node URLs to Perlbal (``X-REPROXY-URL``) or to nginx
(``X-Accel-Redirect``), or stream the bytes from Django. ``aserve`` gives
the same answers from an event loop (ASGI), with asyncio I/O to the trackers
and storage nodes. ``serve_patterns()`` routes each request to the one that
fits the server (``storages_mogile.serving.urls``). See docs/serving.md for
the options and the proxy configurations.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.views.decorators.http import require_safe

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.client import Location
from storages_mogile.client.errors import (
    ChecksumMismatchError,
    NoPathsError,
    TrackerUnavailableError,
    UnknownKeyError,
)
from storages_mogile.serving.files import ServedFile
from storages_mogile.serving.headers import content_headers
from storages_mogile.serving.options import NGINX, PERLBAL, STREAM, ServeOptions
from storages_mogile.serving.proxies import nginx_response, perlbal_response
from storages_mogile.serving.routes import key_access
from storages_mogile.serving.streaming import astream_response, stream_response

logger = logging.getLogger(__name__)

_RESPONDERS = {PERLBAL: perlbal_response, NGINX: nginx_response, STREAM: stream_response}

# Seconds a client is asked to wait after MogileFS could not serve.
RETRY_AFTER = 5

# What MogileFS raises when it cannot serve a stored file: a 503.
_UNAVAILABLE = (TrackerUnavailableError, NoPathsError, ChecksumMismatchError)

# Django's refusal of methods other than GET and HEAD (405), for the async
# view too: Django 4.2's decorators take synchronous views only.
_method_refusal = require_safe(lambda request: None)


class _Request:
    """One request for a stored file, checked as far as it can be without I/O."""

    def __init__(self, request: HttpRequest, name: str, options: dict[str, Any]) -> None:
        self.request = request
        self.name = name
        self.options = ServeOptions.resolve(options)
        self.storage = self.options.get_storage()
        if not name:
            raise Http404("No file name given.")
        self.key = self.storage.key_for(name)
        if key_access().refuses(self.options, self.key):
            raise Http404(f"{name!r} is a file of a more private storage, not served here.")
        check_signature(request, self.storage, name)
        self.mode = self.options.mode_for(request)

    def file_at(self, location: Location) -> tuple[ServedFile, dict[str, str]]:
        """The file at ``location`` and the content headers every mode sends for it."""
        file = ServedFile.at(self.storage, self.name, self.key, location)
        return file, content_headers(file, self.options)

    def failed(self, exc: Exception) -> HttpResponse:
        """The answer when MogileFS cannot serve: 404 for an unknown key, else 503."""
        if isinstance(exc, UnknownKeyError):
            raise Http404(
                f"No file {self.name!r} in MogileFS domain {self.storage.domain!r}."
            ) from None
        logger.warning("MogileFS could not serve %r: %s", self.name, exc)
        return HttpResponse(
            "The file store is unavailable; try again shortly.\n",
            status=503,
            content_type="text/plain; charset=utf-8",
            headers={"Retry-After": str(RETRY_AFTER), "X-Content-Type-Options": "nosniff"},
        )


@require_safe
def serve(request: HttpRequest, name: str, **options: Any) -> HttpResponseBase:
    """Serve the stored file ``name`` of the storage named by the ``storage`` option.

    ``options`` are the URL pattern's keyword arguments and override the
    ``MOGILEFS_SERVE_*`` settings. An unknown name is a 404; a name the
    storage refuses (``..``, over-long) raises SuspiciousFileOperation,
    which Django answers with 400 and logs to ``django.security``; a name
    whose key a more private storage also names is a 404 (``routes``); a
    refusal by the access hook is a 403; MogileFS being unreachable (or
    every copy damaged) is a 503. When every cached path fails, the tracker
    is asked once more before that.
    """
    asked = _Request(request, name, options)
    asked.options.check_access(request, name)
    respond = _RESPONDERS[asked.mode]

    def serve_at(location: Location) -> HttpResponseBase:
        return respond(request, *asked.file_at(location), asked.options)

    try:
        return asked.storage.using_location(asked.key, serve_at)
    except (UnknownKeyError, *_UNAVAILABLE) as exc:
        return asked.failed(exc)


async def aserve(request: HttpRequest, name: str, **options: Any) -> HttpResponseBase:
    """``serve`` for an event loop: the same answers, its I/O with asyncio.

    The trackers, the path cache and the storage nodes are asked without a
    thread; the stream mode's body is read chunk by chunk in the loop. A
    synchronous access hook runs in a thread (it may use the ORM); an
    ``async def`` hook is awaited.
    """
    refusal = _method_refusal(request)
    if refusal is not None:
        return refusal
    asked = _Request(request, name, options)
    await asked.options.acheck_access(request, name)

    async def serve_at(location: Location) -> HttpResponseBase:
        file, headers = asked.file_at(location)
        if asked.mode == STREAM:
            return await astream_response(request, file, headers, asked.options)
        return _RESPONDERS[asked.mode](request, file, headers, asked.options)

    try:
        return await asked.storage.ausing_location(asked.key, serve_at)
    except (UnknownKeyError, *_UNAVAILABLE) as exc:
        return asked.failed(exc)


def check_signature(request: HttpRequest, storage: MogileFSStorage, name: str) -> None:
    """PermissionDenied (403) for a signed storage's request without a valid, unexpired
    signature, and for any request whose signature is expired or wrong."""
    expires, signature = request.GET.get("expires"), request.GET.get("signature")
    if not storage.signed_urls and expires is None and signature is None:
        return
    if not storage.url_signature_valid(name, expires, signature):
        raise PermissionDenied(f"no valid signature for {name!r}")


def serve_mogilefs_file(request: HttpRequest, key: str, **options: Any) -> HttpResponseBase:
    """``serve`` under its original name, for URL patterns capturing ``key`` as the seed's did."""
    return serve(request, key, **options)


__all__ = ["aserve", "serve", "serve_mogilefs_file"]

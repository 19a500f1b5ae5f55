"""The view serving files of a MogileFS storage at its URL prefix.

``serve`` answers GET and HEAD for a storage name in one of three ways,
chosen by ``MOGILEFS_SERVE_MODE`` (or the URL pattern's ``mode``): hand the
storage-node URLs to Perlbal (``X-REPROXY-URL``) or to nginx
(``X-Accel-Redirect``), or stream the bytes from Django. See
docs/serving.md for the options and the proxy configurations.
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
from storages_mogile.serving.streaming import stream_response

logger = logging.getLogger(__name__)

_RESPONDERS = {PERLBAL: perlbal_response, NGINX: nginx_response, STREAM: stream_response}

# Seconds a client is asked to wait after MogileFS could not serve.
RETRY_AFTER = 5


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
    resolved = ServeOptions.resolve(options)
    storage = resolved.get_storage()
    if not name:
        raise Http404("No file name given.")
    key = storage.key_for(name)
    if key_access().refuses(resolved, key):
        raise Http404(f"{name!r} is a file of a more private storage, not served here.")
    check_signature(request, storage, name)
    resolved.check_access(request, name)
    respond = _RESPONDERS[resolved.mode_for(request)]

    def serve_at(location: Location) -> HttpResponseBase:
        file = ServedFile.at(storage, name, key, location)
        return respond(request, file, content_headers(file, resolved), resolved)

    try:
        return storage.using_location(key, serve_at)
    except UnknownKeyError:
        raise Http404(f"No file {name!r} in MogileFS domain {storage.domain!r}.") from None
    except (TrackerUnavailableError, NoPathsError, ChecksumMismatchError) as exc:
        logger.warning("MogileFS could not serve %r: %s", name, exc)
        return HttpResponse(
            "The file store is unavailable; try again shortly.\n",
            status=503,
            content_type="text/plain; charset=utf-8",
            headers={"Retry-After": str(RETRY_AFTER), "X-Content-Type-Options": "nosniff"},
        )


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


__all__ = ["serve", "serve_mogilefs_file"]

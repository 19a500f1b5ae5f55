"""The end-to-end site: /media/ as a project sets it up, plus a fixed mode per prefix."""

from collections.abc import AsyncIterator

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import include, path, re_path

from storages_mogile.serving.urls import serve_patterns
from storages_mogile.views import serve


def bare(request: HttpRequest) -> HttpResponse:
    """An empty answer: the baseline of bench/serve_perlbal.py."""
    return HttpResponse()


async def bare_stream(request: HttpRequest) -> StreamingHttpResponse:
    """8 MiB from an async view doing no I/O: the threads Django's ASGI handler holds
    for a streamed answer (tests/e2e/test_async_view.py)."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield bytes(1024 * 1024)

    return StreamingHttpResponse(chunks())


urlpatterns = [
    path("", include("storages_mogile.urls")),  # /media/, MOGILEFS_SERVE_MODE = "perlbal"
    *serve_patterns(prefix="/nginx/", mode="nginx"),
    *serve_patterns(
        prefix="/nginx-download/",
        mode="nginx",
        attachment=True,
        headers={"Cache-Control": "max-age=60"},
    ),
    *serve_patterns(prefix="/stream/", mode="stream"),
    # The synchronous view whatever the server: the baseline of bench/serve_small.py.
    re_path(r"^stream-sync/(?P<name>(?s:.+))\Z", serve, {"mode": "stream"}),
    *serve_patterns(prefix="/auto/", mode="auto", trust_proxy=True),
    *serve_patterns(prefix="/cached/", mode="perlbal", reproxy_cache_for=60),
    *serve_patterns(prefix="/signed/", storage="signed", mode="stream"),
    *serve_patterns(prefix="/signed-perlbal/", storage="signed", mode="perlbal"),
    *serve_patterns(prefix="/signed-nginx/", storage="signed", mode="nginx"),
    *serve_patterns(
        prefix="/signed-cached/", storage="signed", mode="perlbal", reproxy_cache_for=60
    ),
    *serve_patterns(storage="private", access="tests.serving.doc_examples.can_read"),
    path("bare/", bare),
    path("bare-stream/", bare_stream),
]

"""Middleware of the end-to-end site."""

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware


@sync_and_async_middleware
def view_name(get_response: Callable) -> Callable:
    """``X-View``: the name of the view that answered (``serve`` or ``aserve``).

    Sync and async alike, so that it adds no thread hop under ASGI.
    """

    def named(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        match = getattr(request, "resolver_match", None)
        if match is not None:
            response["X-View"] = match.func.__name__
        return response

    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponseBase:
            response: Awaitable[HttpResponseBase] = get_response(request)
            return named(request, await response)

        return middleware

    def sync_middleware(request: HttpRequest) -> HttpResponseBase:
        return named(request, get_response(request))

    return sync_middleware

"""``SharedThreads``: Django under ASGI without a thread started per request.

Django's ASGI handler runs each request in a ``ThreadSensitiveContext`` of
its own: the first thread-sensitive call of a request (its
``request_started`` receivers are one, so every request makes it) starts a
thread that lives until the response is sent. A slow download under the
async serving view thus still holds a thread, although the view uses none.
Wrapped in ``SharedThreads``, every request's thread-sensitive calls run on
one of a fixed number of shared threads instead, as under a threaded WSGI
server: ``request_started`` and ``request_finished`` receivers, sync
middleware, sync views. A request keeps one thread for all its calls (the
ORM's connections are per thread), and requests sharing a thread wait for
each other's sync calls there: a site whose sync views or middleware are
slow wants more threads, or no wrapper (docs/serving.md).
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext
from django.core.exceptions import ImproperlyConfigured

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SharedThreads:
    """ASGI middleware giving HTTP requests one of ``threads`` shared threads for their sync calls.

    ``application = SharedThreads(get_asgi_application(), threads=4)`` in asgi.py.
    """

    def __init__(self, application: ASGIApp, threads: int = 4) -> None:
        if "executor" not in inspect.signature(ThreadSensitiveContext).parameters:
            raise ImproperlyConfigured(
                "SharedThreads needs asgiref's ThreadSensitiveContext(executor=...), which "
                "this asgiref lacks: upgrade asgiref (pip install -U asgiref)."
            )
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ImproperlyConfigured(
                f"SharedThreads(threads=...) must be an int >= 1, not {threads!r}."
            )
        self.application = application
        executors = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"asgi-shared-{number}")
            for number in range(threads)
        ]
        self._executors = itertools.cycle(executors)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.application(scope, receive, send)
            return
        # The outermost context decides: Django's own one inside is then a no-op.
        async with ThreadSensitiveContext(executor=next(self._executors)):
            await self.application(scope, receive, send)

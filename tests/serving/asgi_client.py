"""Django's AsyncClient behind the test client's synchronous calls.

The serving tests are written against the synchronous test client. Run with
``AsgiClient`` they go through Django's ASGI handler instead, in an event
loop of a thread of their own: the serve patterns resolve to ``aserve`` there
(``storages_mogile.serving.urls``). A streamed body is read chunk by chunk
from that loop as the test iterates it, so a test can still stop a storage
node in the middle of a file.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import unquote

from django.http import HttpResponseBase
from django.test import AsyncClient

from storages_mogile.backends.mogile import aclose_clients

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread until ``stop()``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` in the loop; its result, in this thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        """Let the loop's tasks end (responses closed), close its MogileFS connections, then it."""
        self.run(_other_tasks_done())
        self.run(aclose_clients())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


async def _other_tasks_done() -> None:
    await asyncio.gather(*(asyncio.all_tasks() - {asyncio.current_task()}))


class SyncChunks:
    """An async streamed body iterated from another thread, one chunk at a time."""

    def __init__(self, chunks: AsyncIterator[bytes], loop: LoopThread) -> None:
        self._chunks = chunks
        self._loop = loop

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                yield self._loop.run(anext_chunk(self._chunks))
            except StopAsyncIteration:
                return


async def anext_chunk(chunks: AsyncIterator[bytes]) -> bytes:
    return await anext(chunks)


def as_headers(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The test client's ``HTTP_*`` keyword arguments as AsyncClient's ``headers``
    (its other keywords go into the ASGI scope, which has no such keys)."""
    headers = dict(kwargs.pop("headers", None) or {})
    for name in [name for name in kwargs if name.startswith("HTTP_")]:
        headers[name.removeprefix("HTTP_").replace("_", "-")] = kwargs.pop(name)
    return {**kwargs, "headers": headers}


class Utf8PathAsyncClient(AsyncClient):
    """AsyncClient putting the path into the ASGI scope as text decoded from UTF-8.

    Django's request factory decodes it as ISO-8859-1 for both handlers,
    which is WSGI's convention; an ASGI scope's path is the decoded text,
    as uvicorn sends it, so ``/s%C3%ADgnet`` would otherwise reach the view
    as ``sÃ\xadgnet``.
    """

    def _get_path(self, parsed: Any) -> str:
        return unquote(parsed.path)


class AsgiClient:
    """``client.get(...)`` and the other request methods through Django's AsyncClient."""

    def __init__(self, loop: LoopThread) -> None:
        self._client = Utf8PathAsyncClient()
        self._loop = loop
        self.responses: list[HttpResponseBase] = []

    def __getattr__(self, method: str) -> Callable[..., HttpResponseBase]:
        send = getattr(self._client, method)

        def request(*args: Any, **kwargs: Any) -> HttpResponseBase:
            response = self._loop.run(send(*args, **as_headers(kwargs)))
            if response.streaming and response.is_async:
                response.streaming_content = SyncChunks(response.streaming_content, self._loop)
            self.responses.append(response)
            return response

        return request

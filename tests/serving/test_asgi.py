"""The views under ASGI (Django's AsyncClient), each request in an event loop of its own.

Every test of the view also runs under AsyncClient (the ``client`` fixture);
these check what is particular to ASGI: the body is an async iterator, also
from the sync view, which a pattern naming ``serve`` runs under ASGI too.
"""

from __future__ import annotations

import os

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from storages_mogile.backends.mogile import aclose_clients

pytestmark = pytest.mark.usefixtures("serving_settings")


async def fetch(path: str, **headers: str):
    """The response to a GET through Django's ASGI handler, and its body; the loop's
    MogileFS connections closed."""
    try:
        response = await AsyncClient().get(path, headers=headers)
        if not response.streaming:
            return response, response.content
        return response, b"".join([chunk async for chunk in response.streaming_content])
    finally:
        await aclose_clients()


@pytest.mark.parametrize("prefix", ["/mogilefs/", "/seed/"])  # aserve, and serve in a thread
def test_stream_mode_streams_asynchronously(stored, prefix):
    data = os.urandom(2 * 1024 * 1024 + 3)
    name = stored(data)
    response, content = async_to_sync(fetch)(f"{prefix}{name}")
    assert response.status_code == 200
    assert response.is_async  # an async iterator: ASGI does not buffer it whole
    assert content == data


def test_ranges_and_conditions_under_asgi(stored):
    name = stored(b"0123456789")
    response, content = async_to_sync(fetch)(f"/mogilefs/{name}", range="bytes=-3")
    assert (response.status_code, content) == (206, b"789")
    etag = response["ETag"]
    response, content = async_to_sync(fetch)(f"/mogilefs/{name}", if_none_match=etag)
    assert (response.status_code, content) == (304, b"")


def test_proxy_modes_and_refusals_under_asgi(stored):
    name = stored(b"x", ".txt")
    response, content = async_to_sync(fetch)(f"/perlbal/{name}")
    assert content == b"" and response["X-REPROXY-URL"].startswith("http://")
    response, _ = async_to_sync(fetch)(f"/nginx/{name}")
    assert response["X-Accel-Redirect"] == "/internal/mogilefs/"
    response, _ = async_to_sync(fetch)("/mogilefs/serving/missing.txt")
    assert response.status_code == 404

"""The async view under a real ASGI server (uvicorn), the sync one under WSGI (wsgiref).

One URLconf serves both: ``serve_patterns()`` resolve to ``aserve`` in
uvicorn's event loop and to ``serve`` under wsgiref (the site's ``X-View``
header names the view that answered). Both must give the same answers.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable

import pytest
import urllib3

from storages_mogile.serving.urls import async_client_available
from tests.e2e.servers import Server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not async_client_available(), reason="the asyncio client is not installed (async extra)"
    ),
]

# Headers that differ by server, not by view.
_TRANSPORT = {"date", "server", "x-view", "connection", "transfer-encoding", "keep-alive"}


def answer(http: urllib3.PoolManager, method: str, url: str, **headers: str) -> tuple:
    """What a request is answered with, but the headers that name the server."""
    response = http.request(method, url, headers=headers, redirect=False)
    kept = {name.lower(): value for name, value in response.headers.items()}
    if response.status == 304:  # wsgiref says Content-Length: 0, uvicorn nothing
        kept.pop("content-length", None)
    # Each server's path cache holds the paths in the order the tracker gave it.
    if "x-reproxy-url" in kept:
        kept["x-reproxy-url"] = " ".join(sorted(kept["x-reproxy-url"].split()))
    paths = sorted(kept.pop(name) for name in list(kept) if name.startswith("x-mogilefs-path-"))
    kept = {k: v for k, v in kept.items() if k not in _TRANSPORT}
    return response.status, {**kept, "paths": paths}, response.data


def test_each_server_runs_the_view_made_for_it(http, django_site, wsgi_site, put):
    key = put(b"which view")
    for prefix in ("/stream/", "/media/", "/nginx/"):
        assert http.request("GET", f"{django_site.url}{prefix}{key}").headers["X-View"] == "aserve"
        assert http.request("GET", f"{wsgi_site.url}{prefix}{key}").headers["X-View"] == "serve"
    # A hand-written pattern of ``serve`` keeps it, also under ASGI (in a thread).
    synced = http.request("GET", f"{django_site.url}/stream-sync/{key}")
    assert (synced.headers["X-View"], synced.data) == ("serve", b"which view")


def test_the_async_and_the_sync_view_answer_alike(http, django_site, wsgi_site, put):
    data = os.urandom(300_000)
    # One copy: two copies differ in Last-Modified (a replica is written
    # later), so the ETag of a stream depends on the copy a server reads.
    key = put(data, ".txt", cls="thumb")
    stream = f"/stream/{key}"
    etag = http.request("GET", f"{wsgi_site.url}{stream}").headers["ETag"]
    modified = http.request("HEAD", f"{wsgi_site.url}{stream}").headers["Last-Modified"]
    requests: list[tuple[str, str, dict[str, str]]] = [
        ("GET", stream, {}),
        ("HEAD", stream, {}),
        ("GET", stream, {"Range": "bytes=100-199"}),
        ("GET", stream, {"Range": "bytes=-7"}),
        ("GET", stream, {"Range": "bytes=300000-"}),  # 416
        ("GET", stream, {"Range": "bytes=0-1,5-6"}),  # ignored: 200
        ("GET", stream, {"Range": "bytes=0-9", "If-Range": '"stale"'}),  # whole file
        ("GET", stream, {"If-None-Match": etag}),  # 304
        ("GET", stream, {"If-Modified-Since": modified}),  # 304
        ("GET", stream, {"If-Match": '"other"'}),  # 412
        ("GET", stream, {"If-Unmodified-Since": "Thu, 01 Jan 1998 00:00:00 GMT"}),  # 412
        ("POST", stream, {}),  # 405
        ("GET", "/stream/e2e/never-stored.txt", {}),  # 404
        ("GET", "/stream/e2e/%2E%2E/escape.txt", {}),  # 400
        ("GET", f"/media/{key}", {}),  # perlbal
        ("GET", f"/media/{key}", {"Range": "bytes=0-1"}),
        ("GET", f"/cached/{key}", {}),
        ("GET", f"/nginx/{key}", {}),
        ("GET", f"/nginx-download/{key}", {}),
        ("GET", f"/auto/{key}", {"X-Proxy-Capabilities": "reproxy-file"}),
        ("GET", f"/auto/{key}", {}),
        ("GET", f"/signed/{key}", {}),  # 403: no signature
        ("GET", f"/signed/{key}?expires=1&signature=x", {}),  # 403: expired
        ("GET", f"/private/{key}", {}),  # 403: the access hook refuses
        ("GET", f"/stream/signed/{key}", {}),  # 404: the signed storage's key space
    ]
    for method, path, headers in requests:
        asgi = answer(http, method, f"{django_site.url}{path}", **headers)
        wsgi = answer(http, method, f"{wsgi_site.url}{path}", **headers)
        assert asgi == wsgi, f"{method} {path} {headers}"
    statuses = [answer(http, m, f"{wsgi_site.url}{p}", **h)[0] for m, p, h in requests]
    assert statuses == [
        200, 200, 206, 206, 416, 200, 200, 304, 304, 412, 412, 405, 404, 400,
        200, 200, 200, 200, 200, 200, 200, 403, 403, 403, 404,
    ]  # fmt: skip


def test_mogilefs_down_is_a_503_with_retry_after_under_both(
    http, django_site, wsgi_site, put, mogile, stop_node
):
    key = put(b"soon unreachable")
    for site in (django_site, wsgi_site):  # the paths cached by both
        assert http.request("GET", f"{site.url}/stream/{key}").status == 200
    for path in mogile.get_paths(key, noverify=True):
        stop_node(path)
    asgi = answer(http, "GET", f"{django_site.url}/stream/{key}")
    assert asgi == answer(http, "GET", f"{wsgi_site.url}/stream/{key}")
    status, headers, body = asgi
    assert (status, headers["retry-after"]) == (503, "5")
    assert b"127.0.0.1" not in body


def test_a_node_stopped_mid_read_is_resumed_from_the_other_copy(
    http, django_site, put, mogile, stop_node, e2e_cluster
):
    data = os.urandom(24 * 1024 * 1024 + 5)
    key = put(data)
    url = f"{django_site.url}/stream/{key}"
    assert http.request("HEAD", url).status == 200  # paths cached, in the site's order
    # The site reads from the first of its cached paths; stop each node in turn
    # mid-read: one of the two downloads loses the node it reads from.
    for path in mogile.get_paths(key, noverify=True):
        response = http.request("GET", url, preload_content=False)
        assert response.headers["X-View"] == "aserve"
        received = bytearray(response.read(2 * 1024 * 1024))
        stop_node(path)
        received += response.read()
        response.release_conn()
        assert bytes(received) == data
        node = next(node for node in e2e_cluster.nodes if path.startswith(node.url + "/"))
        node.start()


def thread_count(server: Server) -> int:
    assert server.process is not None
    with open(f"/proc/{server.process.pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))


async def paused_downloads(port: int, path: str, count: int, look: Callable[[], int]) -> int:
    """``count`` downloads of ``path`` started and left unread; ``look()`` while they wait."""
    connections = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: e2e\r\n\r\n".encode())
            await reader.readuntil(b"\r\n\r\n")  # the view answered; its body waits
            connections.append(writer)
        await asyncio.sleep(0.5)
        return look()
    finally:
        for writer in connections:
            writer.close()


def test_downloads_in_progress_hold_no_thread_of_the_async_view(http, django_site, put):
    """Django's ASGI handler holds a thread per request (its ThreadSensitiveContext
    runs request_started's receivers there): the view adds none to it, as an async
    view doing no I/O does not."""
    key = put(os.urandom(8 * 1024 * 1024))
    assert http.request("GET", f"{django_site.url}/stream/{key}").status == 200  # warm
    assert http.request("GET", f"{django_site.url}/bare-stream/").status == 200

    def added(path: str) -> int:
        time.sleep(0.5)  # threads of earlier requests end
        before = thread_count(django_site)
        look = lambda: thread_count(django_site)
        return asyncio.run(paused_downloads(django_site.port, path, 40, look)) - before

    assert added(f"/stream/{key}") <= added("/bare-stream/") + 2


@pytest.mark.parametrize("prefix", ["/stream/", "/stream-sync/"])
def test_shared_threads_bound_the_threads_of_downloads(
    http, django_site, shared_threads_site, put, prefix
):
    """SharedThreads: 40 downloads in progress hold no thread each (Django's own included),
    under either view; the same downloads under the bare handler hold 40."""
    key = put(os.urandom(8 * 1024 * 1024))
    path = f"{prefix}{key}"

    def added(site: Server) -> int:
        assert http.request("GET", f"{site.url}{path}").status == 200  # warm
        time.sleep(0.5)  # threads of earlier requests end
        before = thread_count(site)
        return (
            asyncio.run(paused_downloads(site.port, path, 40, lambda: thread_count(site))) - before
        )

    assert added(shared_threads_site) <= 4  # the shared threads, started on first use
    assert added(django_site) >= 40
    response = http.request("GET", f"{shared_threads_site.url}{path}")
    assert response.headers["X-View"] == ("aserve" if prefix == "/stream/" else "serve")

"""Small protocol helpers for the dev server's tests (raw sockets, http.client).

These tests talk to the dev server directly, not through
``storages_mogile.client``, so they check the server on its own terms.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from storages_mogile.client.protocol import Reply, decode_reply, encode_request, numbered

if TYPE_CHECKING:
    from typing_extensions import Self

T = TypeVar("T")


class Line:
    """A tracker connection: one request line out, one reply line back."""

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.reader = self.sock.makefile("rb")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def raw(self, data: bytes) -> bytes:
        self.sock.sendall(data)
        return self.reader.readline()

    def ask(self, command: str, **args: str | int | None) -> Reply:
        return decode_reply(self.raw(encode_request(command, args)))

    def ok(self, command: str, **args: str | int | None) -> dict[str, str]:
        reply = self.ask(command, **args)
        assert reply.ok, f"{command} {args} failed: {reply.code} {reply.message}"
        return reply.args

    def store(
        self, key: str, data: bytes, cls: str | None = None, domain: str = "testdomain"
    ) -> int:
        """create_open, PUT to the first destination, create_close; the fid."""
        opened = self.ok("create_open", domain=domain, key=key, **{"class": cls})
        fid, devid, path = int(opened["fid"]), opened["devid"], opened["path"]
        status, _, _ = http_request("PUT", path, data)
        assert status == 200
        self.ok(
            "create_close", domain=domain, key=key, fid=fid, devid=devid, path=path, size=len(data)
        )
        return fid

    def paths(self, key: str, domain: str = "testdomain", **args: str | int) -> list[str]:
        return numbered(self.ok("get_paths", domain=domain, key=key, **args), "paths", "path{}")

    def devcount(self, key: str, domain: str = "testdomain") -> int:
        return int(self.ok("file_info", domain=domain, key=key)["devcount"])


def http_request(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection: status, headers, body."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(method, parts.path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def wait_for(probe: Callable[[], T], *, timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something true; fail after ``timeout``.

    The timeout only bounds a hang; tests never assert how long it took.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} (last value {result!r})")
        time.sleep(0.05)


def refused(address: str) -> bool:
    """Whether a TCP connect to ``host:port`` is refused."""
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False

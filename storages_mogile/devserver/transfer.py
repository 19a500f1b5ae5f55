"""HTTP calls from the tracker and its worker to the storage nodes.

The tracker checks sizes with ``HEAD``, the replication worker copies files
with ``GET`` + ``PUT`` and removes them with ``DELETE``, all over HTTP as a
real tracker does, so a stopped or broken node fails these calls for real.
"""

from __future__ import annotations

import hashlib
import http.client
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..digits import parse_digits

TIMEOUT = 10.0
BLOCK = 1 << 20


class TransferError(Exception):
    """A storage node could not be reached or refused the request."""


@dataclass(frozen=True)
class RemoteSize:
    """What a ``HEAD`` found: the size, or why there is none.

    ``size`` is ``None`` when the node could not be reached, ``-1`` when it
    answered that the file is missing.
    """

    size: int | None
    error: str = ""

    @property
    def missing(self) -> bool:
        return self.size == -1


def _connect(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise TransferError(f"not a storage node URL: {url!r}")
    connection = http.client.HTTPConnection(
        parts.hostname, parts.port or 80, timeout=timeout, blocksize=BLOCK
    )
    return connection, parts.path or "/"


def _exchange(
    method: str, url: str, timeout: float, limit: int | None = None
) -> tuple[http.client.HTTPResponse, bytes]:
    """One request without a body: the response and (up to ``limit`` bytes of) its body."""
    connection, path = _connect(url, timeout)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response, response.read(limit)
    finally:
        connection.close()


def head_size(url: str, timeout: float = TIMEOUT) -> RemoteSize:
    """The size of the file at ``url`` according to its node."""
    try:
        response, _ = _exchange("HEAD", url, timeout)
    except (OSError, http.client.HTTPException, TransferError) as exc:
        return RemoteSize(None, f"cannot reach {url}: {exc}")
    if response.status == 404:
        return RemoteSize(-1, f"{url} answered 404 Not Found")
    length = response.getheader("Content-Length")
    size = parse_digits(length)
    if response.status != 200 or size is None:
        return RemoteSize(None, f"{url} answered {response.status} {response.reason}")
    return RemoteSize(size)


def delete(url: str, timeout: float = TIMEOUT) -> bool:
    """Remove the file at ``url``; ``True`` once it is gone (204 or 404)."""
    try:
        response, _ = _exchange("DELETE", url, timeout)
    except (OSError, http.client.HTTPException, TransferError):
        return False
    return response.status in (204, 404)


def copy(
    source: str,
    destination: str,
    length: int,
    timeout: float = TIMEOUT,
    algorithm: str | None = None,
) -> str | None:
    """Stream the file at ``source`` to ``destination``; TransferError on failure.

    The body goes through in blocks, never whole in memory; the copy counts
    only if the source delivers exactly ``length`` bytes and the destination
    accepts them. With ``algorithm`` the bytes are hashed on the way and the
    hex digest is returned.
    """
    hasher = hashlib.new(algorithm) if algorithm else None
    try:
        reader, source_path = _connect(source, timeout)
        writer, destination_path = _connect(destination, timeout)
        try:
            reader.request("GET", source_path)
            response = reader.getresponse()
            if response.status != 200 or response.length != length:
                raise TransferError(
                    f"{source} answered {response.status} with {response.length} bytes, not {length}"
                )
            writer.request(
                "PUT",
                destination_path,
                body=_hashed(response, hasher),
                headers={"Content-Length": str(length)},
            )
            stored = writer.getresponse()
            stored.read()
            if stored.status != 200:
                raise TransferError(
                    f"{destination} refused the copy: {stored.status} {stored.reason}"
                )
        finally:
            reader.close()
            writer.close()
    except (OSError, http.client.HTTPException) as exc:
        raise TransferError(f"copying {source} to {destination} failed: {exc}") from exc
    return hasher.hexdigest() if hasher else None


def _hashed(response: http.client.HTTPResponse, hasher: Any) -> Iterator[bytes]:
    """The blocks of a response body, each added to ``hasher`` (if any) on the way."""
    while block := response.read(BLOCK):
        if hasher is not None:
            hasher.update(block)
        yield block


def digest(url: str, algorithm: str = "md5", timeout: float = TIMEOUT) -> str:
    """The hex digest of the file at ``url``; TransferError if unreadable."""
    hasher = hashlib.new(algorithm)
    try:
        connection, path = _connect(url, timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            if response.status != 200:
                raise TransferError(f"{url} answered {response.status} {response.reason}")
            while block := response.read(BLOCK):
                hasher.update(block)
        finally:
            connection.close()
    except (OSError, http.client.HTTPException) as exc:
        raise TransferError(f"reading {url} failed: {exc}") from exc
    return hasher.hexdigest()


def fetch(url: str, limit: int = 1 << 16, timeout: float = TIMEOUT) -> bytes:
    """A small document from a node (the usage report); TransferError if not 200."""
    try:
        response, body = _exchange("GET", url, timeout, limit)
    except (OSError, http.client.HTTPException) as exc:
        raise TransferError(f"reading {url} failed: {exc}") from exc
    if response.status != 200:
        raise TransferError(f"{url} answered {response.status} {response.reason}")
    return body

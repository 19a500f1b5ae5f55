"""Single byte ranges (RFC 9110 section 14): parsing ``Range`` and checking ``If-Range``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from django.http import HttpRequest
from django.utils.http import parse_http_date_safe

_RANGE = re.compile(r"\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*", re.ASCII | re.IGNORECASE)

# Larger than any file: a position with more digits than this is "past the
# end" (int() of a 4,301-digit string would raise, and a header is the
# client's to choose).
_MAX_DIGITS = 18
_BEYOND_ANY_FILE = 10**_MAX_DIGITS


class RangeNotSatisfiable(Exception):
    """The requested range lies outside the file: answer 416."""


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``start`` to ``end`` (both included) of a file of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


def parse_range(header: str, size: int) -> ByteRange | None:
    """The one byte range ``header`` asks of a ``size``-byte file.

    None means "ignore the header and send the whole file", which RFC 9110
    allows for anything but a single valid byte range (other units, bad
    syntax, several ranges). A range starting past the end, or an empty
    suffix, raises RangeNotSatisfiable.
    """
    match = _RANGE.fullmatch(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = _position(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return ByteRange(max(size - suffix, 0), size - 1, size)
    start = _position(first)
    if last and _position(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(header)
    end = min(_position(last), size - 1) if last else size - 1
    return ByteRange(start, end, size)


def _position(digits: str) -> int:
    """A byte position; any number too long for a file size counts as past every end."""
    significant = digits.lstrip("0")
    if len(significant) > _MAX_DIGITS:
        return _BEYOND_ANY_FILE
    return int(significant or "0")


def if_range_allows(request: HttpRequest, etag: str | None, modified: datetime | None) -> bool:
    """Whether ``If-Range`` (if any) lets the Range header apply.

    An entity tag must equal the current strong ETag; a date must equal the
    current Last-Modified to the second. Anything else means the client's
    copy is stale, and it gets the whole file.
    """
    value = request.headers.get("If-Range")
    if not value:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return etag is not None and value == etag
    since = parse_http_date_safe(value)
    return since is not None and modified is not None and since == int(modified.timestamp())

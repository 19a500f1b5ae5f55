"""Payloads the contract saves, and the file-like objects it saves them through."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile

MIB = 1024 * 1024
#: The size of the large binary payload.
LARGE_SIZE = 10 * MIB
#: Text with characters outside Latin-1: its UTF-8 form is longer than the text,
#: so a wrong encoding or a length counted in characters shows.
TEXT = "Grüße, 世界: text content ✓\nsecond line\n"
#: Text whose UTF-8 form has one byte per character.
ASCII_TEXT = "plain text content\nsecond line\n"


@lru_cache(maxsize=4)
def binary_payload(size: int, seed: int = 0) -> bytes:
    """``size`` pseudo-random bytes, the same for the same seed.

    Random bytes contain every byte value, NUL and CR/LF included, so any
    text-mode or encoding step on the way shows as a difference.
    """
    return random.Random(seed).randbytes(size)


def png_payload(width: int, height: int) -> bytes:
    """A PNG image of ``width`` x ``height`` pixels (needs Pillow)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


class NonSeekableStream(io.RawIOBase):
    """A byte stream read once from start to end, like a pipe or a socket.

    ``seek()`` and ``tell()`` raise ``io.UnsupportedOperation``; Django's
    ``File.chunks()`` accepts that and reads on from where the stream is.
    """

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        raise io.UnsupportedOperation("NonSeekableStream cannot seek")

    def tell(self) -> int:
        raise io.UnsupportedOperation("NonSeekableStream cannot tell its position")

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), len(self._data) - self._position)
        buffer[:count] = self._data[self._position : self._position + count]
        self._position += count
        return count


def _temporary_upload(data: bytes) -> TemporaryUploadedFile:
    """An upload spooled to a temporary file, as Django hands over large uploads."""
    upload = TemporaryUploadedFile("upload.bin", "application/octet-stream", len(data), None)
    upload.write(data)
    upload.seek(0)
    return upload


def _local_file(data: bytes, directory: Path) -> File:
    """A ``File`` around an open file on disk."""
    path = directory / "local.bin"
    path.write_bytes(data)
    return File(path.open("rb"), name=str(path))


#: Ways of handing ``data`` to ``Storage.save()``: name -> builder(data, scratch directory).
SOURCES: dict[str, Callable[[bytes, Path], Any]] = {
    "content_file": lambda data, _: ContentFile(data),
    "bytes_io": lambda data, _: io.BytesIO(data),
    "local_file": _local_file,
    "simple_upload": lambda data, _: SimpleUploadedFile("upload.bin", data),
    "temporary_upload": lambda data, _: _temporary_upload(data),
    "non_seekable": lambda data, _: NonSeekableStream(data),
}

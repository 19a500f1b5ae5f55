"""Response headers of a served file: content headers and validators."""

from __future__ import annotations

import mimetypes
import posixpath
from datetime import datetime

from django.utils.crypto import salted_hmac
from django.utils.http import content_disposition_header, http_date

from storages_mogile.serving.files import ServedFile
from storages_mogile.serving.options import ServeOptions

# A file compressed as a whole is served as the compressed type, not as
# the type of what it holds (``x.tar.gz`` is gzip data, not a tarball).
_ENCODED_TYPES = {
    "br": "application/x-brotli",
    "bzip2": "application/x-bzip",
    "compress": "application/x-compress",
    "gzip": "application/gzip",
    "xz": "application/x-xz",
}


def content_type_for(name: str) -> str:
    """The Content-Type of a file, guessed from its name."""
    content_type, encoding = mimetypes.guess_type(name, strict=False)
    if encoding is not None:
        content_type = _ENCODED_TYPES.get(encoding, "application/octet-stream")
    return content_type or "application/octet-stream"


def content_headers(file: ServedFile, options: ServeOptions) -> dict[str, str]:
    """The headers every mode sends for ``file``, configured headers last."""
    headers = {
        "Content-Type": content_type_for(file.name),
        "X-Content-Type-Options": "nosniff",
    }
    if options.attachment:
        disposition = content_disposition_header(True, posixpath.basename(file.name))
        headers["Content-Disposition"] = disposition or "attachment"
    headers.update(options.headers)
    return headers


def etag_for(file: ServedFile, modified: datetime | None) -> str | None:
    """A strong ETag for the stored version of ``file``, or None.

    The MD5 the tracker recorded, for classes with a hash type: the same
    bytes stored again keep their ETag. Otherwise the fid, length and
    ``modified`` (the storage node's Last-Modified) together: MogileFS never
    changes a stored file (saving a key again makes a new fid), and another
    cluster, or this one rebuilt after a reset, that hands out the same fid
    again writes it at another time or with another length. They are
    hashed with SECRET_KEY (the fid counter stays private). None without a
    fid or a date: nothing would tell such versions apart.
    """
    if file.md5 is not None:
        return f'"{file.md5}"'
    if file.fid is None or modified is None:
        return None
    version = f"{file.storage.domain}\0{file.fid}\0{file.size}\0{int(modified.timestamp())}"
    return f'"{salted_hmac("storages_mogile.etag", version, algorithm="sha256").hexdigest()[:32]}"'


def last_modified_header(modified: datetime | None) -> dict[str, str]:
    """A Last-Modified header for ``modified``, none when it is unknown."""
    if modified is None:
        return {}
    return {"Last-Modified": http_date(modified.timestamp())}

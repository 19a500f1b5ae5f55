"""Signed URLs and MD5 ETags through the real servers, on the run's MogileFS.

The site's ``signed`` storage signs every URL and verifies checksums; it is
served at /signed/ (stream), /signed-perlbal/ and /signed-nginx/. The
signatures are made here with the site's SECRET_KEY, as the site would.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator

import pytest

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.client import Client
from tests.client.test_damaged_copies import damage
from tests.conftest import Target, hash_typed_class
from tests.e2e.conftest import REPLICATION_TIMEOUT, require_binary
from tests.e2e.servers import perlbal_server

pytestmark = pytest.mark.e2e

SITE_SECRET_KEY = "storages-mogile-e2e"  # tests/e2e/site/settings.py
PREFIXES = ["/signed/", "/signed-perlbal/", "/signed-nginx/"]


@pytest.fixture(scope="module")
def md5_class(e2e_mogilefs: Target) -> Iterator[str]:
    with hash_typed_class(e2e_mogilefs) as name:
        yield name


@pytest.fixture
def signer(settings, e2e_mogilefs: Target) -> MogileFSStorage:
    """A storage signing as the site's ``signed`` storage does."""
    settings.SECRET_KEY = SITE_SECRET_KEY
    return MogileFSStorage(
        domain=e2e_mogilefs.domain,
        trackers=e2e_mogilefs.trackers,
        base_url="/signed/",
        signed_urls=True,
    )


@pytest.fixture
def summed(mogile: Client, md5_class: str) -> Iterator[tuple[str, bytes]]:
    """A file of the hash-typed class with both copies made: ``(key, data)``."""
    data = os.urandom(200_000)
    key = f"e2e-signed/{uuid.uuid4().hex}.bin"
    mogile.store_content(key, data, md5_class)
    stop = time.monotonic() + REPLICATION_TIMEOUT
    while mogile.file_info(key).devcount < 2:
        assert time.monotonic() < stop, f"{key} was not replicated"
        time.sleep(0.1)
    yield key, data
    mogile.delete(key)


def front(prefix: str, django_site, perlbal, nginx) -> str:  # type: ignore[no-untyped-def]
    """The server a prefix is fetched through: its proxy, or Django itself for streaming."""
    return {"/signed/": django_site, "/signed-perlbal/": perlbal, "/signed-nginx/": nginx}[
        prefix
    ].url


@pytest.mark.parametrize("prefix", PREFIXES)
def test_signed_urls_open_their_file_and_nothing_else(  # type: ignore[no-untyped-def]
    http, django_site, perlbal, nginx, signer, summed, prefix
) -> None:
    key, data = summed
    base = front(prefix, django_site, perlbal, nginx)
    url = signer.url(key).replace("/signed/", prefix, 1)
    response = http.request("GET", base + url)
    assert response.status == 200 and response.data == data
    path, query = url.split("?")
    expired = signer.url(key, expire=-1).replace("/signed/", prefix, 1)
    for refused in (path, expired, path + "?" + query.replace("signature=", "signature=x")):
        response = http.request("GET", base + refused)
        assert response.status == 403, refused
        assert response.data != data


def test_the_stream_etag_is_the_md5_and_a_damaged_file_is_never_served_whole(  # type: ignore[no-untyped-def]
    http, django_site, signer, summed, mogile
) -> None:
    key, data = summed
    url = django_site.url + signer.url(key)
    response = http.request("GET", url)
    assert response.status == 200 and response.data == data
    assert response.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    for path in mogile.get_paths(key, noverify=True):
        damage(path, bytes([data[0] ^ 0xFF]) + data[1:])
    # The site's storage verifies streamed reads. The file fits in the
    # first chunk, which the view reads before answering: no copy matches,
    # so the answer is a 503 without any of the damaged bytes.
    response = http.request("GET", url)
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"


def test_perlbals_reproxy_cache_never_serves_a_signed_url_past_its_expiry(  # type: ignore[no-untyped-def]
    http, django_site, signer, summed, tmp_path
) -> None:
    """/signed-cached/ asks Perlbal to cache for 60 s; a link expiring sooner
    is cached only until it expires."""
    key, data = summed
    config = ("SET reproxy_cache_maxsize = 100",)
    with perlbal_server(require_binary("perlbal"), tmp_path, django_site, config) as perlbal:
        url = perlbal.url + signer.url(key, expire=3).replace("/signed/", "/signed-cached/", 1)
        expires = int(url.partition("expires=")[2].partition("&")[0])
        for _ in range(2):  # the second may come from the cache
            response = http.request("GET", url)
            assert (response.status, response.data) == (200, data)
        time.sleep(max(0.0, expires + 1.5 - time.time()))
        assert http.request("GET", url).status == 403

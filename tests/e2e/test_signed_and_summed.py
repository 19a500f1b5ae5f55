"""Signed URLs and MD5 ETags through the real servers, on the run's MogileFS.

The site's ``signed`` storage (key prefix "signed/", inside the default
storage's key space) signs every URL and verifies checksums; it is served
at /signed/ (stream), /signed-perlbal/ and /signed-nginx/. Its ``private``
storage (key prefix "private/") is served at /private/ with the access hook
of docs/serving.md. The signatures are made here with the site's
SECRET_KEY, as the site would.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.client import Client
from tests.client.test_damaged_copies import damage
from tests.conftest import Target, hash_typed_class
from tests.e2e.conftest import REPLICATION_TIMEOUT, require_binary
from tests.e2e.servers import perlbal_server
from tests.serving.test_signed import expired_url

pytestmark = pytest.mark.e2e

SITE_SECRET_KEY = "storages-mogile-e2e"  # tests/e2e/site/settings.py
PREFIXES = ["/signed/", "/signed-perlbal/", "/signed-nginx/"]
# The default storage's routes (tests/e2e/site/urls.py) and the server in front of each.
DEFAULT_ROUTES = [
    ("/media/", "perlbal"),
    ("/cached/", "perlbal"),
    ("/auto/", "perlbal"),
    ("/nginx/", "nginx"),
    ("/nginx-download/", "nginx"),
    ("/stream/", "django_site"),
]


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
        key_prefix="signed/",
        base_url="/signed/",
        signed_urls=True,
    )


@pytest.fixture
def summed(mogile: Client, md5_class: str) -> Iterator[tuple[str, bytes]]:
    """A file of the signed storage, of the hash-typed class, with both copies made:
    ``(name, data)``."""
    data = os.urandom(200_000)
    name = f"e2e/{uuid.uuid4().hex}.bin"
    mogile.store_content(f"signed/{name}", data, md5_class)
    stop = time.monotonic() + REPLICATION_TIMEOUT
    while mogile.file_info(f"signed/{name}").devcount < 2:
        assert time.monotonic() < stop, f"{name} was not replicated"
        time.sleep(0.1)
    yield name, data
    mogile.delete(f"signed/{name}")


@pytest.fixture
def stored(mogile: Client) -> Iterator[dict[str, bytes]]:
    """Store ``{key: data}`` items put into it (one copy each); deleted afterwards."""
    keys: dict[str, bytes] = {}
    yield keys
    for key in keys:
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
    name, data = summed
    base = front(prefix, django_site, perlbal, nginx)
    url = signer.url(name).replace("/signed/", prefix, 1)
    response = http.request("GET", base + url)
    assert response.status == 200 and response.data == data
    path, query = url.split("?")
    expired = expired_url(signer, name).replace("/signed/", prefix, 1)
    for refused in (path, expired, path + "?" + query.replace("signature=", "signature=x")):
        response = http.request("GET", base + refused)
        assert response.status == 403, refused
        assert response.data != data


def test_the_stream_etag_is_the_md5_and_a_damaged_file_is_never_served_whole(  # type: ignore[no-untyped-def]
    http, django_site, signer, summed, mogile
) -> None:
    name, data = summed
    url = django_site.url + signer.url(name)
    response = http.request("GET", url)
    assert response.status == 200 and response.data == data
    assert response.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    for path in mogile.get_paths(signer.key_for(name), noverify=True):
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
    name, data = summed
    config = ("SET reproxy_cache_maxsize = 100",)
    with perlbal_server(require_binary("perlbal"), tmp_path, django_site, config) as perlbal:
        url = perlbal.url + signer.url(name, expire=3).replace("/signed/", "/signed-cached/", 1)
        expires = int(url.partition("expires=")[2].partition("&")[0])
        for _ in range(2):  # the second may come from the cache
            response = http.request("GET", url)
            assert (response.status, response.data) == (200, data)
        time.sleep(max(0.0, expires + 1.5 - time.time()))
        assert http.request("GET", url).status == 403


def store(mogile: Client, stored: dict[str, bytes], key: str, data: bytes) -> None:
    mogile.store_content(key, data, cls="thumb")
    stored[key] = data


@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_signature_opens_only_the_name_it_was_signed_for(  # type: ignore[no-untyped-def]
    http, django_site, perlbal, nginx, signer, mogile, stored, prefix
) -> None:
    """A link for ``x:public``, sent for ``x`` with ``public:`` moved into its signature."""
    name = f"e2e/{uuid.uuid4().hex}/42.pdf"
    store(mogile, stored, f"signed/{name}", b"the invoice")
    store(mogile, stored, f"signed/{name}:public", b"a public copy")
    base = front(prefix, django_site, perlbal, nginx)
    link = signer.url(f"{name}:public").replace("/signed/", prefix, 1)
    response = http.request("GET", base + link)
    assert (response.status, response.data) == (200, b"a public copy")
    query = {key: values[0] for key, values in parse_qs(urlsplit(link).query).items()}
    forged = {"expires": query["expires"], "signature": f"public:{query['signature']}"}
    path = urlsplit(signer.url(name)).path.replace("/signed/", prefix, 1)
    response = http.request("GET", f"{base}{path}?{urlencode(forged)}")
    assert response.status == 403 and b"the invoice" not in response.data


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("expires", ["\u00b2", "\u2460"])  # str.isdigit() takes them, int() not
def test_expires_other_than_ascii_digits_is_403(  # type: ignore[no-untyped-def]
    http, django_site, perlbal, nginx, signer, mogile, stored, prefix, expires
) -> None:
    name = f"e2e/{uuid.uuid4().hex}.txt"
    store(mogile, stored, f"signed/{name}", b"signed bytes")
    path, _, query = signer.url(name).replace("/signed/", prefix, 1).partition("?")
    odd = {**parse_qs(query), "expires": expires}
    url = front(prefix, django_site, perlbal, nginx) + path + "?" + urlencode(odd, doseq=True)
    assert http.request("GET", url).status == 403


@pytest.mark.parametrize(("route", "server"), DEFAULT_ROUTES)
def test_nested_private_storages_are_not_served_by_the_default_routes(  # type: ignore[no-untyped-def]
    http, django_site, perlbal, nginx, signer, mogile, stored, settings, route, server
) -> None:
    """The signed and the hooked storage's keys lie inside the default storage's."""
    from tests.serving.doc_examples import signed_url

    name = f"e2e/{uuid.uuid4().hex}.txt"
    store(mogile, stored, f"signed/{name}", b"signed bytes")
    store(mogile, stored, f"private/{name}", b"private bytes")
    base = {"perlbal": perlbal, "nginx": nginx, "django_site": django_site}[server].url
    for path in (f"{route}signed/{name}", f"{route}private/{name}"):
        response = http.request("GET", base + path)
        assert response.status == 404, path
        assert response.data not in (b"signed bytes", b"private bytes")
    # Each is served by its own route, with its signature or token.
    response = http.request(
        "GET", perlbal.url + signer.url(name).replace("/signed/", "/signed-perlbal/")
    )
    assert (response.status, response.data) == (200, b"signed bytes")
    settings.STORAGES = {
        **settings.STORAGES,
        "private": {
            "BACKEND": "storages_mogile.backends.mogile.MogileFSStorage",
            "OPTIONS": {
                "domain": signer.domain,
                "trackers": signer.trackers,
                "base_url": "/private/",
            },
        },
    }
    response = http.request("GET", perlbal.url + signed_url(name))
    assert (response.status, response.data) == (200, b"private bytes")
    assert http.request("GET", f"{perlbal.url}/private/{name}").status == 403

"""Signed, expiring URLs: url(name, expire=...), signed_urls, and the view's 403s."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from .conftest import ALIAS, mogile_storages

pytestmark = pytest.mark.usefixtures("serving_settings")

MODES = [
    "mogilefs",
    "perlbal",
    "nginx",
]  # stream, Perlbal and nginx prefixes of tests/serving/urls.py


@pytest.fixture
def signed(settings, relay):  # type: ignore[no-untyped-def]
    settings.STORAGES = mogile_storages([relay.address], signed_urls=True, url_expire=60)
    return storages[ALIAS]


def in_mode(url: str, prefix: str) -> str:
    return url.replace("/mogilefs/", f"/{prefix}/", 1)


def tampered(signature: str) -> str:
    """The signature with its first character changed (to another one, always)."""
    return ("y" if signature[0] == "x" else "x") + signature[1:]


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    query.update(changes)
    return parts.path + "?" + "&".join(f"{name}={value}" for name, value in query.items() if value)


@pytest.mark.parametrize("prefix", MODES)
def test_a_signed_url_opens_its_file_in_every_mode(client, signed, prefix) -> None:
    name = signed.save("signed/a.txt", ContentFile(b"secret"))
    url = signed.url(name)
    assert "expires=" in url and "signature=" in url
    assert client.get(in_mode(url, prefix)).status_code == 200


@pytest.mark.parametrize("prefix", MODES)
def test_missing_tampered_or_expired_signatures_are_403(client, signed, prefix) -> None:
    name = signed.save("signed/b.txt", ContentFile(b"secret"))
    url = in_mode(signed.url(name), prefix)
    other = signed.save("signed/other.txt", ContentFile(b"other"))
    refused = [
        urlsplit(url).path,  # no signature
        with_query(url, signature=tampered(parse_qs(urlsplit(url).query)["signature"][0])),
        with_query(url, expires=str(int(parse_qs(urlsplit(url).query)["expires"][0]) + 1)),
        in_mode(signed.url(name, expire=-1), prefix),  # expired
        urlsplit(url).path + "?" + urlsplit(signed.url(other)).query,  # another file's
    ]
    for attempt in refused:
        response = client.get(attempt)
        assert response.status_code == 403, attempt
        assert not any(
            header.startswith("X-") and "REPROXY" in header for header in response.headers
        )
        assert "X-Accel-Redirect" not in response


def test_a_signature_opens_nothing_in_another_storage(client, settings, relay) -> None:
    settings.STORAGES = mogile_storages([relay.address], signed_urls=True, key_prefix="one/")
    first = storages[ALIAS]
    name = first.save("shared.txt", ContentFile(b"one"))
    url = first.url(name)
    settings.STORAGES = mogile_storages([relay.address], signed_urls=True, key_prefix="two/")
    second = storages[ALIAS]
    second.save("shared.txt", ContentFile(b"two"))
    assert client.get(url).status_code == 403


def test_rotated_secret_keys_keep_issued_links_working(client, settings, signed) -> None:
    name = signed.save("signed/c.txt", ContentFile(b"secret"))
    url = signed.url(name)
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "a-new-secret-key"
    assert client.get(url).status_code == 403
    settings.SECRET_KEY_FALLBACKS = [old]
    assert client.get(url).status_code == 200


def test_expire_signs_a_url_of_any_storage(client, storage) -> None:
    name = storage.save("signed/d.txt", ContentFile(b"public"))
    assert "?" not in storage.url(name)
    assert client.get(storage.url(name, expire=30)).status_code == 200
    assert client.get(storage.url(name, expire=-1)).status_code == 403  # an expired link


def test_perlbal_never_caches_a_signed_answer_past_its_expiry(client, settings, signed) -> None:
    settings.MOGILEFS_SERVE_REPROXY_CACHE_FOR = 3600
    name = signed.save("signed/e.txt", ContentFile(b"secret"))
    response = client.get(in_mode(signed.url(name, expire=20), "perlbal"))
    seconds = int(response["X-REPROXY-CACHE-FOR"].split(";")[0])
    assert 0 < seconds <= 20

"""Signed, expiring URLs: url(name, expire=...), signed_urls, and the view's 403s."""

from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from storages_mogile.backends.mogile import MogileFSStorage

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
    return parts.path + "?" + urlencode({name: value for name, value in query.items() if value})


def expired_url(storage: MogileFSStorage, name: str, ago: int = 60) -> str:
    """The URL ``storage.url(name)`` gave ``ago`` seconds before it expired, signed as it signs."""
    expires = int(time.time()) - ago
    signature = storage._url_signer().signature(f"{expires}:{name}")
    return with_query(storage.url(name, expire=60), expires=str(expires), signature=signature)


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


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
        in_mode(expired_url(signed, name), prefix),
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
    assert client.get(expired_url(storage, name)).status_code == 403
    # The expired link differs from a valid one in its expiry alone.
    assert client.get(expired_url(storage, name, ago=-60)).status_code == 200


def test_perlbal_never_caches_a_signed_answer_past_its_expiry(client, settings, signed) -> None:
    settings.MOGILEFS_SERVE_REPROXY_CACHE_FOR = 3600
    name = signed.save("signed/e.txt", ContentFile(b"secret"))
    response = client.get(in_mode(signed.url(name, expire=20), "perlbal"))
    seconds = int(response["X-REPROXY-CACHE-FOR"].split(";")[0])
    assert 0 < seconds <= 20


@pytest.mark.parametrize("prefix", MODES)
def test_a_signature_opens_only_the_name_it_was_signed_for(client, signed, prefix) -> None:
    """A link for ``x:public``, sent for ``x`` with ``public:`` moved into its signature."""
    name = signed.save(f"signed/{uuid.uuid4().hex}/42.pdf", ContentFile(b"the invoice"))
    public = signed.save(f"{name}:public", ContentFile(b"a public copy"))
    link = in_mode(signed.url(public), prefix)
    assert client.get(link).status_code == 200
    query = query_of(link)
    forged = with_query(
        in_mode(signed.url(name), prefix),
        expires=query["expires"],
        signature=f"public:{query['signature']}",
    )
    response = client.get(forged)
    assert response.status_code == 403
    assert "X-Accel-Redirect" not in response and "X-REPROXY-URL" not in response


@pytest.mark.parametrize("prefix", MODES)
@pytest.mark.parametrize("expires", ["\u00b2", "\u2460", "\u0661" * 10, "+1"])
def test_expires_other_than_ascii_digits_is_403(client, signed, prefix, expires) -> None:
    """Superscript two, circled one, Arabic-Indic digits: str.isdigit() takes them all."""
    name = signed.save("signed/f.txt", ContentFile(b"secret"))
    url = with_query(in_mode(signed.url(name), prefix), expires=expires)
    assert client.get(url).status_code == 403


def test_expires_other_than_ascii_digits_is_403_on_an_unsigned_storage(client, stored) -> None:
    name = stored(b"public")
    assert client.get(f"/mogilefs/{name}?expires=%C2%B2&signature=x").status_code == 403
    assert client.get(f"/perlbal/{name}?expires=%E2%91%A0&signature=x").status_code == 403


@pytest.mark.parametrize(
    ("expire", "error", "match"),
    [
        (90.0, TypeError, "90.0"),
        ("90", TypeError, "'90'"),
        (True, TypeError, "True"),
        (0, ValueError, "0"),
        (-1, ValueError, "-1"),
        (10**12, ValueError, "1000000000000"),
    ],
)
def test_url_expire_argument_is_whole_positive_seconds(storage, expire, error, match) -> None:
    with pytest.raises(error, match=rf"url\(name, expire=\.\.\.\) is {match}: .*whole number"):
        storage.url("signed/g.txt", expire=expire)


@pytest.mark.parametrize("value", [90.0, "3600", 0, -5, True, None, 10**12])
def test_url_expire_option_is_checked_when_configured(value) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"'url_expire' \(MOGILEFS_URL_EXPIRE\) is"):
        MogileFSStorage(url_expire=value)


def test_url_expire_in_the_storages_options_is_checked(settings, relay) -> None:
    # Raised where the storage is configured: by the setting change itself
    # for a storage already made, else when STORAGES makes it.
    with pytest.raises(ImproperlyConfigured, match="is 90.0: .* not a float"):
        settings.STORAGES = mogile_storages([relay.address], signed_urls=True, url_expire=90.0)
        storages[ALIAS]


def test_the_largest_accepted_lifetimes_give_links_that_open(client, settings, relay) -> None:
    settings.STORAGES = mogile_storages([relay.address], signed_urls=True, url_expire=10**9)
    signed = storages[ALIAS]
    name = signed.save("signed/h.txt", ContentFile(b"long-lived"))
    assert client.get(signed.url(name)).status_code == 200
    assert client.get(signed.url(name, expire=1)).status_code == 200

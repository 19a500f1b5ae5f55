"""The serve view in every mode: what it answers, what it refuses, what it costs."""

from __future__ import annotations

import logging
import sys
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import InvalidStorageError, storages
from django.urls import resolve

from storages_mogile.serving.urls import serve_patterns
from storages_mogile.views import serve
from tests.serving.conftest import ALIAS, mogile_storages, wait_for_paths

pytestmark = pytest.mark.usefixtures("serving_settings")


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


# Perlbal


def test_perlbal_answer_lists_every_path_and_no_body(client, storage, stored):
    name = stored(b"avatar bytes", ".jpg")
    # Both copies (class default: 2), or the view could find the second one
    # made after the tracker listed the first.
    paths = wait_for_paths(storage, name, 2)
    response = client.get(f"/perlbal/{name}")
    assert response.status_code == 200
    assert response.content == b""
    assert response["X-REPROXY-URL"].split(" ") == storage.get_paths(name)
    assert set(response["X-REPROXY-URL"].split(" ")) == set(paths)
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-REPROXY-EXPECTED-SIZE"] == str(len(b"avatar bytes"))


def test_legacy_serve_with_perlbal_setting_selects_perlbal(client, settings, stored):
    del settings.MOGILEFS_SERVE_MODE
    settings.SERVE_WITH_PERLBAL = True
    name = stored(b"legacy")
    assert "X-REPROXY-URL" in client.get(f"/mogilefs/{name}")
    settings.SERVE_WITH_PERLBAL = False
    assert body(client.get(f"/mogilefs/{name}")) == b"legacy"


def test_perlbal_expected_size_is_sent_unless_a_range_is_asked(client, stored):
    name = stored(b"12345")
    assert client.get(f"/perlbal/{name}")["X-REPROXY-EXPECTED-SIZE"] == "5"
    ranged = client.get(f"/perlbal/{name}", HTTP_RANGE="bytes=0-1")
    assert "X-REPROXY-EXPECTED-SIZE" not in ranged


def test_perlbal_reproxy_cache_for_names_the_headers_to_replay(client, settings, stored):
    settings.MOGILEFS_SERVE_REPROXY_CACHE_FOR = 60
    settings.MOGILEFS_SERVE_HEADERS = {"Cache-Control": "max-age=60"}
    name = stored(b"x", ".css")
    response = client.get(f"/perlbal/{name}")
    seconds, names = response["X-REPROXY-CACHE-FOR"].split(";")
    assert seconds == "60"
    assert names.split() == ["Content-Type", "X-Content-Type-Options", "Cache-Control"]
    assert response["Cache-Control"] == "max-age=60"


# nginx


def test_nginx_answer_redirects_internally_with_the_paths(client, storage, stored):
    name = stored(b"n", ".txt")
    paths = storage.get_paths(name)
    response = client.get(f"/nginx/{name}")
    assert response.status_code == 200
    assert response.content == b""
    assert response["X-Accel-Redirect"] == "/internal/mogilefs/"
    assert response["X-MogileFS-Path-1"] == paths[0]
    for number, path in enumerate(paths, start=1):
        assert response[f"X-MogileFS-Path-{number}"] == path
    assert f"X-MogileFS-Path-{len(paths) + 1}" not in response
    assert response["Content-Type"].startswith("text/plain")


# auto


def test_auto_follows_a_trusted_perlbal(client, settings, stored):
    settings.MOGILEFS_SERVE_MODE = "auto"
    settings.MOGILEFS_SERVE_TRUST_PROXY = True
    name = stored(b"auto")
    behind_perlbal = client.get(f"/mogilefs/{name}", HTTP_X_PROXY_CAPABILITIES="reproxy-file")
    assert "X-REPROXY-URL" in behind_perlbal and behind_perlbal.content == b""
    direct = client.get(f"/mogilefs/{name}")
    assert "X-REPROXY-URL" not in direct and body(direct) == b"auto"


def test_auto_without_a_trusted_proxy_is_refused(client, settings, stored):
    settings.MOGILEFS_SERVE_MODE = "auto"
    name = stored(b"auto")
    with pytest.raises(ImproperlyConfigured, match="MOGILEFS_SERVE_TRUST_PROXY"):
        client.get(f"/mogilefs/{name}", HTTP_X_PROXY_CAPABILITIES="reproxy-file")


# Options


def test_unknown_mode_is_named(client, settings, stored):
    settings.MOGILEFS_SERVE_MODE = "lighttpd"
    with pytest.raises(ImproperlyConfigured, match="'lighttpd'"):
        client.get(f"/mogilefs/{stored(b'x')}")


def test_unknown_view_argument_is_named():
    with pytest.raises(ImproperlyConfigured, match="'modes'.*Valid options: access"):
        serve_patterns(prefix="/x/", modes="stream")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"headers": {"X-A": 1}}, "MOGILEFS_SERVE_HEADERS"),
        ({"nginx_location": "internal"}, "must be a path"),
        ({"reproxy_cache_for": "60"}, "number of seconds"),
        ({"reproxy_cache_for": 0}, "must be positive"),
        ({"access": 42}, "callable"),
        ({"access": "no.such.module.hook"}, "cannot be imported"),
    ],
)
def test_bad_options_are_explained(options, match):
    with pytest.raises(ImproperlyConfigured, match=match):
        serve_patterns(prefix="/x/", **options)


def test_storage_alias_must_be_a_mogilefs_storage(client, settings, stored):
    name = stored(b"x")
    settings.MOGILEFS_SERVE_STORAGE = "default"
    with pytest.raises(ImproperlyConfigured, match="InMemoryStorage, not a MogileFSStorage"):
        client.get(f"/mogilefs/{name}")
    settings.MOGILEFS_SERVE_STORAGE = "nope"
    with pytest.raises(InvalidStorageError):
        client.get(f"/mogilefs/{name}")


def test_options_per_url_pattern(client, stored):
    name = stored(b"report", ".pdf")
    response = client.get(f"/download/{name}")
    assert body(response) == b"report"
    basename = name.rsplit("/", 1)[1]
    assert response["Content-Disposition"] == f'attachment; filename="{basename}"'
    assert response["Cache-Control"] == "private"
    assert "Content-Disposition" not in client.get(f"/mogilefs/{name}")


def test_default_patterns_follow_the_storage_base_url(settings, storage):
    pattern = serve_patterns()[0]
    assert pattern.pattern.regex.pattern == r"^mogilefs/(?P<name>(?s:.+))\Z"
    assert pattern.callback is serve


def test_urls_module_serves_the_default_storage(settings, relay):
    settings.STORAGES = {
        "default": {
            "BACKEND": "storages_mogile.backends.mogile.MogileFSStorage",
            "OPTIONS": {"domain": "testdomain", "trackers": [relay.address]},
        }
    }
    settings.MOGILEFS_MEDIA_URL = "/files/"
    del settings.MOGILEFS_SERVE_STORAGE
    sys.modules.pop("storages_mogile.urls", None)  # build its patterns from these settings
    settings.ROOT_URLCONF = "storages_mogile.urls"
    try:
        match = resolve("/files/a/b.png")
    finally:
        sys.modules.pop("storages_mogile.urls", None)
    assert match.func is serve and match.kwargs == {"name": "a/b.png"}


def test_seed_url_pattern_still_works(client, stored):
    name = stored(b"seed")
    assert body(client.get(f"/seed/{name}")) == b"seed"


# Refusals


def test_unknown_name_is_a_404(client):
    assert client.get("/mogilefs/serving/no-such-file.txt").status_code == 404
    assert client.get("/perlbal/serving/no-such-file.txt").status_code == 404
    assert client.get("/seed/").status_code == 404


@pytest.mark.parametrize(
    "name", ["a/../../etc/passwd", "..", "x/" + "y" * 300, "secret.txt%00.png", "%00"]
)
def test_names_the_storage_refuses_are_a_400(client, caplog, name):
    with caplog.at_level(logging.ERROR, logger="django.security"):
        response = client.get(f"/mogilefs/{name}")
    assert response.status_code == 400
    assert any(record.name.startswith("django.security") for record in caplog.records)


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch", "options"])
def test_only_get_and_head(client, stored, method):
    response = getattr(client, method)(f"/mogilefs/{stored(b'x')}")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


def test_unreachable_tracker_is_a_503(client, settings, stored):
    name = stored(b"x")
    settings.STORAGES = mogile_storages(["127.0.0.1:1"], path_cache=None, connect_timeout=0.5)
    response = client.get(f"/mogilefs/{name}")
    assert response.status_code == 503
    assert response["Retry-After"]
    assert b"127.0.0.1" not in response.content


# The path cache


def test_a_path_cache_hit_costs_no_tracker_round_trip(client, storage, relay, stored):
    name = stored(b"cached paths")
    wait_for_paths(storage, name, 1)
    before = relay.requests
    client.get(f"/perlbal/{name}")
    assert relay.requests - before == 2  # file_info and get_paths, then cached
    before = relay.requests
    for _ in range(5):
        assert "X-REPROXY-URL" in client.get(f"/perlbal/{name}")
    assert relay.requests - before == 0
    before = relay.requests
    assert body(client.get(f"/mogilefs/{name}")) == b"cached paths"
    assert relay.requests - before == 0  # streaming reads the cached paths too


def test_saving_or_deleting_a_key_drops_its_cached_paths(client, settings, relay, stored):
    settings.STORAGES = mogile_storages([relay.address], file_overwrite=True)
    storage = storages[ALIAS]
    name = stored(b"version 1")
    assert body(client.get(f"/mogilefs/{name}")) == b"version 1"  # paths now cached
    storage.save(name, ContentFile(b"version 2"))
    before = relay.requests
    assert body(client.get(f"/mogilefs/{name}")) == b"version 2"
    assert relay.requests - before == 2  # the save dropped the entry: asked again
    storage.delete(name)
    assert client.get(f"/mogilefs/{name}").status_code == 404


def test_without_a_path_cache_every_request_asks_the_tracker(client, settings, relay, stored):
    settings.STORAGES = mogile_storages([relay.address], path_cache=None)
    name = stored(b"uncached")
    before = relay.requests
    for _ in range(3):
        client.get(f"/perlbal/{name}")
    assert relay.requests - before == 3 * 2  # file_info and get_paths each time


# Private files: the access hook example of docs/serving.md


@pytest.fixture
def private_settings(settings, relay):
    """A "private" storage alias served at /private/ with the documented hook."""
    setting = mogile_storages([relay.address])
    setting["private"] = mogile_storages(
        [relay.address], key_prefix="private/", base_url="/private/"
    )[ALIAS]
    settings.STORAGES = setting
    return settings


def test_documented_access_hook_serves_signed_links_only(client, private_settings):
    from tests.serving.doc_examples import signed_url

    def stored(data: bytes, suffix: str) -> str:
        return storages["private"].save(f"serving/{uuid.uuid4().hex}{suffix}", ContentFile(data))

    name = stored(b"secret", ".txt")
    url = signed_url(name)
    assert url.startswith(f"/private/{name}?token=")
    response = client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"secret"
    assert client.get(f"/private/{name}").status_code == 403
    assert client.get(f"/private/{name}?token=forged").status_code == 403
    other = stored(b"other", ".txt")
    token = url.partition("?")[2]
    assert client.get(f"/private/{other}?{token}").status_code == 403


def test_a_reproxy_cache_is_never_used_with_an_access_hook(client, settings, stored):
    """The URLconf loads (check E017 reports the combination); Perlbal is not told to cache."""
    serve_patterns(prefix="/x/", reproxy_cache_for=60, access=lambda request, name: True)
    settings.MOGILEFS_SERVE_REPROXY_CACHE_FOR = 60
    settings.MOGILEFS_SERVE_ACCESS = lambda request, name: True
    response = client.get(f"/perlbal/{stored(b'x')}")
    assert response.status_code == 200 and "X-REPROXY-URL" in response
    assert "X-REPROXY-CACHE-FOR" not in response


def test_access_hook_runs_before_the_tracker_is_asked(client, relay, settings):
    calls = []
    settings.MOGILEFS_SERVE_ACCESS = lambda request, name: calls.append(name) or False
    before = relay.requests
    assert client.get("/mogilefs/serving/whatever.txt").status_code == 403
    assert calls == ["serving/whatever.txt"]
    assert relay.requests == before


@pytest.mark.parametrize("suffix", ["line\nfeed.txt", "carriage\rreturn.txt", "tab\t.txt"])
def test_every_name_save_accepts_is_served_at_its_url(client, storage, stored, suffix):
    name = stored(b"control characters", suffix=suffix)
    response = client.get(storage.url(name))
    assert response.status_code == 200
    assert body(response) == b"control characters"

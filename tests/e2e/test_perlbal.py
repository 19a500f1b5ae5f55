"""Django under uvicorn behind the real Perlbal, configured as docs/serving.md says."""

from __future__ import annotations

import os

import pytest
import urllib3

from tests.client.test_damaged_copies import damage
from tests.e2e.conftest import require_binary
from tests.e2e.servers import django_server, perlbal_server

pytestmark = pytest.mark.e2e


def served_paths(http, django_site, key: str) -> list[str]:
    """The paths Django hands Perlbal for ``key``, in order (cached after the first ask)."""
    response = http.request("GET", f"{django_site.url}/media/{key}")
    assert response.status == 200 and response.data == b""
    return response.headers["X-REPROXY-URL"].split(" ")


def test_perlbal_sends_the_stored_bytes(http, perlbal, put):
    data = os.urandom(3 * 1024 * 1024 + 11)
    key = put(data, ".png")
    response = http.request("GET", f"{perlbal.url}/media/{key}")
    assert response.status == 200
    assert response.data == data
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert not any(name.lower().startswith("x-reproxy") for name in response.headers)


def test_perlbal_falls_through_to_the_second_path(http, perlbal, django_site, put, stop_node):
    data = os.urandom(1024 * 1024)
    key = put(data)
    paths = served_paths(http, django_site, key)
    assert len(paths) == 2
    stop_node(paths[0])
    response = http.request("GET", f"{perlbal.url}/media/{key}")
    assert response.status == 200
    assert response.data == data


def test_range_passes_through_perlbal(http, perlbal, put, django_site, stop_node):
    data = os.urandom(100_000)
    key = put(data)
    response = http.request(
        "GET", f"{perlbal.url}/media/{key}", headers={"Range": "bytes=1000-1999"}
    )
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    assert response.data == data[1000:2000]
    stop_node(served_paths(http, django_site, key)[0])
    response = http.request("GET", f"{perlbal.url}/media/{key}", headers={"Range": "bytes=99990-"})
    assert response.status == 206
    assert response.data == data[99990:]


def test_head_and_unknown_keys_through_perlbal(http, perlbal, put):
    key = put(b"0123456789", ".txt")
    response = http.request("HEAD", f"{perlbal.url}/media/{key}")
    assert response.status == 200
    assert response.headers["Content-Length"] == "10"
    assert response.data == b""
    assert http.request("GET", f"{perlbal.url}/media/e2e/missing.txt").status == 404


def test_perlbal_reproxy_cache_answers_without_django(http, e2e_mogilefs, put, tmp_path):
    binary = require_binary("perlbal")
    data = os.urandom(50_000)
    key = put(data)
    with django_server(tmp_path, e2e_mogilefs.trackers, e2e_mogilefs.domain) as site:
        perlbal = perlbal_server(binary, tmp_path, site, ("SET reproxy_cache_maxsize = 100",))
        with perlbal:
            first = http.request("GET", f"{perlbal.url}/cached/{key}")
            assert (first.status, first.data) == (200, data)
            site.stop()
            with pytest.raises(urllib3.exceptions.HTTPError):
                http.request("GET", f"{site.url}/bare/")  # Django is gone
            again = http.request("GET", f"{perlbal.url}/cached/{key}")
            assert (again.status, again.data) == (200, data)  # from Perlbal's reproxy cache
            assert again.headers["Content-Type"] == "application/octet-stream"
            assert again.headers["X-Content-Type-Options"] == "nosniff"


def test_perlbal_never_serves_a_damaged_copy(http, perlbal, put, mogile):
    data = os.urandom(1_000_000)
    key = put(data)
    damage(mogile.get_paths(key, noverify=True)[0], b"x" * 1000)
    short = sum(http.request("GET", f"{perlbal.url}/media/{key}").data != data for _ in range(200))
    assert short == 0

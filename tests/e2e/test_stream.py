"""Stream mode under a real ASGI server (uvicorn), and auto mode behind Perlbal."""

from __future__ import annotations

import os

import pytest

from tests.client.test_damaged_copies import damage

pytestmark = pytest.mark.e2e


def test_uvicorn_streams_the_stored_bytes(http, django_site, put):
    data = os.urandom(8 * 1024 * 1024 + 1)
    key = put(data, ".tar.gz")
    response = http.request("GET", f"{django_site.url}/stream/{key}", preload_content=False)
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/gzip"
    assert response.headers["Content-Length"] == str(len(data))
    assert b"".join(response.stream(1024 * 1024)) == data


def test_uvicorn_answers_ranges_conditions_and_head(http, django_site, put):
    key = put(b"0123456789")
    url = f"{django_site.url}/stream/{key}"
    ranged = http.request("GET", url, headers={"Range": "bytes=-3"})
    assert (ranged.status, ranged.data, ranged.headers["Content-Range"]) == (
        206,
        b"789",
        "bytes 7-9/10",
    )
    assert http.request("GET", url, headers={"Range": "bytes=10-"}).status == 416
    etag = ranged.headers["ETag"]
    assert http.request("GET", url, headers={"If-None-Match": etag}).status == 304
    head = http.request("HEAD", url)
    assert (head.status, head.data, head.headers["Content-Length"]) == (200, b"", "10")


def test_auto_reproxies_behind_perlbal_and_streams_otherwise(http, perlbal, django_site, put):
    data = os.urandom(200_000)
    key = put(data)
    direct = http.request("GET", f"{django_site.url}/auto/{key}")
    assert direct.data == data and "X-REPROXY-URL" not in direct.headers
    assert "ETag" in direct.headers  # streamed by Django
    behind = http.request("GET", f"{perlbal.url}/auto/{key}")
    assert behind.data == data
    assert "ETag" not in behind.headers  # reproxied: Django's empty answer had none
    forged = http.request(
        "GET", f"{django_site.url}/auto/{key}", headers={"X-Proxy-Capabilities": "reproxy-file"}
    )
    assert "X-REPROXY-URL" in forged.headers  # why auto needs MOGILEFS_SERVE_TRUST_PROXY


def test_a_damaged_copy_is_never_streamed_short(http, django_site, put, mogile):
    data = os.urandom(1_000_000)
    key = put(data)
    damage(mogile.get_paths(key, noverify=True)[0], b"x" * 1000)
    short = sum(
        http.request("GET", f"{django_site.url}/stream/{key}").data != data for _ in range(200)
    )
    assert short == 0

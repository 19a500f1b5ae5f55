"""Django under uvicorn behind the real nginx, configured as docs/serving.md says."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.e2e


def served_paths(http, django_site, key: str) -> list[str]:
    """The paths Django hands nginx for ``key``, in order (cached after the first ask)."""
    response = http.request("GET", f"{django_site.url}/nginx/{key}")
    assert response.status == 200 and response.data == b""
    assert response.headers["X-Accel-Redirect"] == "/_mogilefs/"
    return [response.headers[f"X-MogileFS-Path-{n}"] for n in (1, 2)]


def test_nginx_sends_the_stored_bytes(http, nginx, put):
    data = os.urandom(3 * 1024 * 1024 + 11)
    key = put(data, ".png")
    response = http.request("GET", f"{nginx.url}/nginx/{key}")
    assert response.status == 200
    assert response.data == data
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers.getlist("Content-Type") == ["image/png"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert not any(name.lower().startswith("x-mogilefs") for name in response.headers)


def test_nginx_falls_through_to_the_second_path(http, nginx, django_site, put, stop_node):
    data = os.urandom(1024 * 1024)
    key = put(data)
    paths = served_paths(http, django_site, key)
    assert len(paths) == 2
    stop_node(paths[0])
    response = http.request("GET", f"{nginx.url}/nginx/{key}")
    assert response.status == 200
    assert response.data == data


def test_range_passes_through_nginx(http, nginx, django_site, put, stop_node):
    data = os.urandom(100_000)
    key = put(data)
    response = http.request("GET", f"{nginx.url}/nginx/{key}", headers={"Range": "bytes=1000-1999"})
    assert response.status == 206
    assert response.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    assert response.data == data[1000:2000]
    stop_node(served_paths(http, django_site, key)[0])
    response = http.request("GET", f"{nginx.url}/nginx/{key}", headers={"Range": "bytes=99990-"})
    assert response.status == 206
    assert response.data == data[99990:]


def test_nginx_keeps_disposition_and_cache_control(http, nginx, put):
    key = put(b"%PDF-", ".pdf")
    response = http.request("GET", f"{nginx.url}/nginx-download/{key}")
    assert response.status == 200
    assert response.data == b"%PDF-"
    filename = key.rsplit("/", 1)[1]
    assert response.headers.getlist("Content-Disposition") == [f'attachment; filename="{filename}"']
    assert response.headers.getlist("Cache-Control") == ["max-age=60"]
    assert response.headers.getlist("Content-Type") == ["application/pdf"]


def test_head_and_unknown_keys_through_nginx(http, nginx, put):
    key = put(b"0123456789", ".txt")
    response = http.request("HEAD", f"{nginx.url}/nginx/{key}")
    assert response.status == 200
    assert response.headers["Content-Length"] == "10"
    assert http.request("GET", f"{nginx.url}/nginx/e2e/missing.txt").status == 404


def test_clients_cannot_use_the_internal_location(http, nginx, django_site, put):
    key = put(b"internal only")
    path = served_paths(http, django_site, key)[0]
    headers = {f"X-MogileFS-Path-{n}": path for n in (1, 2, 3)}
    response = http.request("GET", f"{nginx.url}/_mogilefs/", headers=headers)
    assert response.status >= 400  # 404, then 502 from the empty fallbacks
    assert b"internal only" not in response.data

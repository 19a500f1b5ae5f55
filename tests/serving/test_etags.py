"""Stream-mode ETags of files without a recorded MD5: never the same for other bytes.

MogileFS numbers files from 1 again in a new cluster (or one rebuilt after
a reset), so the fid alone names different files there; the ETag also
holds the length and the storage node's date.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages

from storages_mogile.client.aionodes import AsyncStorageNodes
from storages_mogile.client.nodes import StorageNodes
from tests.conftest import start_cluster
from tests.serving.conftest import ALIAS, mogile_storages

pytestmark = pytest.mark.usefixtures("serving_settings")


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def serve_from_a_new_cluster(settings, directory: Path, data: bytes):
    """Start a fresh dev cluster, save ``data`` as ``reset.txt`` there: ``(cluster, fid)``."""
    cluster = start_cluster(directory)
    settings.STORAGES = mogile_storages(cluster.trackers, mogile_class="thumb")
    storage = storages[ALIAS]
    assert storage.save("reset.txt", ContentFile(data)) == "reset.txt"
    return cluster, storage.client.file_info("reset.txt").fid


def test_a_rebuilt_cluster_s_other_bytes_under_the_same_fid_get_another_etag(
    client, settings, tmp_path
):
    old, old_fid = serve_from_a_new_cluster(settings, tmp_path / "old", b"old bytes")
    try:
        first = client.get("/mogilefs/reset.txt")
        assert body(first) == b"old bytes"
        etag = first["ETag"]
    finally:
        old.stop()
    time.sleep(1.1)  # the node's date has whole seconds
    new, new_fid = serve_from_a_new_cluster(settings, tmp_path / "new", b"new bytes")
    try:
        assert new_fid == old_fid
        response = client.get("/mogilefs/reset.txt", HTTP_IF_NONE_MATCH=etag)
        assert response.status_code == 200
        assert body(response) == b"new bytes"
        assert response["ETag"] != etag
    finally:
        new.stop()


def test_only_an_etag_condition_asks_the_storage_node_for_the_date(client, stored, monkeypatch):
    """A plain GET takes its validators from the body's response; If-None-Match on
    a file without MD5 needs the date first (one HEAD) and answers 304."""
    name = stored(b"validated")
    heads: list[str] = []
    head, ahead = StorageNodes.head, AsyncStorageNodes.head

    def counted(self: StorageNodes, url: str, **kwargs):  # type: ignore[no-untyped-def]
        heads.append(url)
        return head(self, url, **kwargs)

    async def acounted(self: AsyncStorageNodes, url: str, **kwargs):  # type: ignore[no-untyped-def]
        heads.append(url)
        return await ahead(self, url, **kwargs)

    monkeypatch.setattr(StorageNodes, "head", counted)
    monkeypatch.setattr(AsyncStorageNodes, "head", acounted)
    response = client.get(f"/mogilefs/{name}")
    etag = response["ETag"]
    assert body(response) == b"validated" and heads == []
    conditional = client.get(f"/mogilefs/{name}", HTTP_IF_NONE_MATCH=etag)
    assert (conditional.status_code, conditional["ETag"], len(heads)) == (304, etag, 1)
    assert client.get(f"/mogilefs/{name}", HTTP_IF_MATCH=etag).status_code == 200
    assert client.get(f"/mogilefs/{name}", HTTP_IF_MATCH='"other"').status_code == 412

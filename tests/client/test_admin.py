"""Admin against the dev cluster (it changes domains, classes and devices)."""

from __future__ import annotations

import hashlib

import pytest

from storages_mogile.client import (
    Admin,
    Client,
    TrackerError,
    UnknownClassError,
    UnknownDomainError,
)
from storages_mogile.devserver import DevCluster


def test_domains_and_classes(dev_cluster: DevCluster) -> None:
    admin = Admin(dev_cluster.trackers)
    assert admin.get_domains()["testdomain"] == {"avatar": 2, "thumb": 1, "default": 2}
    admin.create_domain("d2")
    with pytest.raises(TrackerError, match="domain_exists"):
        admin.create_domain("d2")
    admin.create_class("d2", "summed", 1, hashtype="MD5")
    admin.update_class("d2", "summed", 2)
    assert admin.get_domains()["d2"] == {"summed": 2, "default": 2}
    with pytest.raises(UnknownClassError):
        admin.update_class("d2", "nope", 1)
    with pytest.raises(UnknownDomainError):
        admin.create_class("no-such-domain", "c", 1)

    client = Client("d2", dev_cluster.trackers, verify_checksum=True)
    client.store_content("k", b"summed bytes", "summed")
    assert client.file_info("k").checksum == "MD5:" + hashlib.md5(b"summed bytes").hexdigest()
    with pytest.raises(TrackerError, match="class_has_files"):
        admin.delete_class("d2", "summed")
    client.delete("k")
    admin.delete_class("d2", "summed")
    with pytest.raises(TrackerError, match="nodel_default_class"):
        admin.delete_class("d2", "default")
    admin.delete_domain("d2")
    assert "d2" not in admin.get_domains()


def test_hosts_and_devices(dev_cluster: DevCluster) -> None:
    admin = Admin(dev_cluster.trackers)
    hosts = {host["hostname"]: host for host in admin.get_hosts()}
    assert set(hosts) == {"node1", "node2"}
    assert {host["status"] for host in hosts.values()} == {"alive"}
    devices = {device["devid"]: device for device in admin.get_devices()}
    assert set(devices) == {"1", "2"}
    assert [device["devid"] for device in admin.get_devices(2)] == ["2"]

    admin.set_state("node2", 2, "down")
    client = Client("testdomain", dev_cluster.trackers)
    client.store_content("only-dev1", b"x", "thumb")
    assert [path.split("/")[3] for path in client.get_paths("only-dev1")] == ["dev1"]
    admin.set_state("node2", 2, "alive")
    admin.set_weight("node2", 2, 50)
    assert admin.get_devices(2)[0]["weight"] == "50"
    with pytest.raises(TrackerError, match="host_mismatch"):
        admin.set_state("node1", 2, "alive")

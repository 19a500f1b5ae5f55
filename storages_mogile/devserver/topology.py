"""Hosts and devices as the tracker sees them at one moment.

A snapshot is read from the metadata once per request (or worker pass) and
answers the questions MogileFS asks of its devices: where is a fid's copy on
this device, may the device be read from, receive new files, receive
replicas. The state rules are mogilefsd's:

=========  ======  =========  =========
state      read    new files  replicas
=========  ======  =========  =========
alive      yes     yes        yes
readonly   yes     no         no
drain      yes     no         no
down       no      no         no
dead       no      no         no
=========  ======  =========  =========

A host that is not ``alive`` (or ``readonly``, for reading) makes its
devices unusable the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from .layout import fid_url
from .metadata import DeviceRow, HostRow, MetadataStore

DEVICE_STATES = ("alive", "dead", "down", "drain", "readonly")
HOST_STATES = ("alive", "dead", "down", "readonly")


@dataclass(frozen=True)
class Topology:
    """Every host and device, by id."""

    hosts: dict[int, HostRow]
    devices: dict[int, DeviceRow]

    @classmethod
    def load(cls, store: MetadataStore) -> Topology:
        return cls(
            {host.hostid: host for host in store.hosts()},
            {dev.devid: dev for dev in store.devices()},
        )

    def host_of(self, devid: int) -> HostRow | None:
        """The host of a device, or ``None`` for an unknown device."""
        device = self.devices.get(devid)
        return self.hosts.get(device.hostid) if device else None

    def url(self, devid: int, fid: int, *, reading: bool = False) -> str | None:
        """The URL of a fid on a device; reading URLs use ``http_get_port``."""
        host = self.host_of(devid)
        if host is None:
            return None
        port = (host.http_get_port if reading else None) or host.http_port
        return fid_url(host.hostip, port or 0, devid, fid)

    def readable(self, devid: int) -> bool:
        """May copies on this device be handed out to readers?"""
        device, host = self.devices.get(devid), self.host_of(devid)
        if device is None or host is None:
            return False
        return device.status in ("alive", "readonly", "drain") and host.status in (
            "alive",
            "readonly",
        )

    def writable(self, devid: int) -> bool:
        """May this device receive new files and replicas?"""
        device, host = self.devices.get(devid), self.host_of(devid)
        if device is None or host is None:
            return False
        return device.status == "alive" and host.status == "alive"

    def lost(self, devid: int) -> bool:
        """Are copies on this device gone for good (dead or unknown device)?"""
        device = self.devices.get(devid)
        return device is None or device.status == "dead"

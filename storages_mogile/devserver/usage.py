"""Disk usage of devices, read from the nodes' ``/dev<N>/usage`` reports.

A real tracker's monitor polls these reports; the dev tracker reads them
when a command needs them (``get_devices``, ``create_open`` with a size)
and keeps each for a couple of seconds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from .topology import Topology
from .transfer import TransferError, fetch

CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class DeviceUsage:
    """Space on a device in MiB, as ``get_devices`` reports it."""

    total_mb: int
    used_mb: int
    free_mb: int


def parse_usage(report: bytes) -> DeviceUsage | None:
    """Read a usage report (``available:``, ``total:``, ``used:`` in KiB)."""
    fields = {}
    for line in report.decode("utf-8", "replace").splitlines():
        name, _, value = line.partition(":")
        fields[name.strip()] = value.strip()
    try:
        return DeviceUsage(
            int(fields["total"]) // 1024,
            int(fields["used"]) // 1024,
            int(fields["available"]) // 1024,
        )
    except (KeyError, ValueError):
        return None


class UsageMonitor:
    """Usage of each device, fetched on demand and cached briefly."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[float, DeviceUsage | None]] = {}
        self._lock = threading.Lock()

    def usage(self, topology: Topology, devid: int) -> DeviceUsage | None:
        """The device's usage, or ``None`` if its node does not answer."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(devid)
        if cached and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        host = topology.host_of(devid)
        found = None
        if host is not None:
            try:
                found = parse_usage(
                    fetch(f"http://{host.hostip}:{host.http_port}/dev{devid}/usage", timeout=2.0)
                )
            except TransferError:
                found = None
        with self._lock:
            self._cache[devid] = (now, found)
        return found

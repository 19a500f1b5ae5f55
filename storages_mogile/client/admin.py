"""Administration of a MogileFS cluster: domains, classes, hosts, devices.

Method names follow MogileFS::Admin and pymogile's Admin. Failures raise the
typed errors of :mod:`.errors`; note that the tracker uses different codes
than the file commands for the same problem (``domain_not_found`` instead of
``unreg_domain``, ``class_not_found`` instead of ``unreg_class``), which map
to the same exception classes.

With several trackers, a domain or class created through one of them can
stay unknown to the others for a few seconds (their caches refresh
periodically).

When the reply to a ``create_*`` or ``delete_*`` is lost, the result is read
back (is the domain, class, host or device there now?) and the request is
sent again only if it had not taken effect.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .protocol import domain_classes
from .trackers import TrackerPool

if TYPE_CHECKING:
    from typing_extensions import Self


@dataclass(frozen=True)
class ClassInfo:
    """A class as the tracker describes it; ``hashtype`` is ``"NONE"`` or ``"MD5"``."""

    mindevcount: int
    replpolicy: str
    hashtype: str


class Admin:
    """Tracker-level administration; see :class:`~.client.Client` for the settings."""

    def __init__(
        self,
        trackers: str | Iterable[str],
        *,
        connect_timeout: float = 3.0,
        timeout: float = 10.0,
        backoff: float = 5.0,
    ) -> None:
        self.trackers = TrackerPool(
            trackers, connect_timeout=connect_timeout, timeout=timeout, backoff=backoff
        )

    # Domains and classes

    def get_domains(self) -> dict[str, dict[str, int]]:
        """Every domain with its classes and their mindevcount (``default`` included)."""
        classes = domain_classes(self.trackers.call("get_domains", {}))
        return {
            domain: {cls: int(fields["mindevcount"]) for cls, fields in found.items()}
            for domain, found in classes.items()
        }

    def get_classes(self, domain: str) -> dict[str, ClassInfo]:
        """The classes of ``domain`` (``default`` included); ``{}`` for an unknown domain."""
        found = domain_classes(self.trackers.call("get_domains", {})).get(domain, {})
        return {
            cls: ClassInfo(int(fields["mindevcount"]), fields["replpolicy"], fields["hashtype"])
            for cls, fields in found.items()
        }

    def create_domain(self, domain: str) -> None:
        self.trackers.call(
            "create_domain", {"domain": domain}, settle=lambda: domain in self.get_domains()
        )

    def delete_domain(self, domain: str) -> None:
        """Delete an empty domain (no classes besides ``default``, no files)."""
        self.trackers.call(
            "delete_domain", {"domain": domain}, settle=lambda: domain not in self.get_domains()
        )

    def create_class(
        self,
        domain: str,
        cls: str,
        mindevcount: int,
        *,
        replpolicy: str | None = None,
        hashtype: str | None = None,
    ) -> None:
        """Create a class; ``hashtype="MD5"`` makes the tracker keep checksums."""
        self.trackers.call(
            "create_class",
            _class_args(domain, cls, mindevcount, replpolicy, hashtype),
            settle=lambda: self._has_class(domain, cls),
        )

    def update_class(
        self,
        domain: str,
        cls: str,
        mindevcount: int,
        *,
        replpolicy: str | None = None,
        hashtype: str | None = None,
    ) -> None:
        """Change a class (the tracker requires ``mindevcount`` every time)."""
        self.trackers.call(
            "update_class", _class_args(domain, cls, mindevcount, replpolicy, hashtype)
        )

    def delete_class(self, domain: str, cls: str) -> None:
        self.trackers.call(
            "delete_class",
            {"domain": domain, "class": cls},
            settle=lambda: not self._has_class(domain, cls),
        )

    def _has_class(self, domain: str, cls: str) -> bool:
        return cls in self.get_domains().get(domain, {})

    # Hosts and devices

    def get_hosts(self, hostid: int | None = None) -> list[dict[str, str]]:
        """Hosts as dicts of the tracker's fields (``hostid``, ``hostname``, ``hostip``, ...)."""
        return _records(self.trackers.call("get_hosts", {"hostid": hostid}), "hosts", "host")

    def create_host(
        self,
        host: str,
        ip: str,
        port: int,
        *,
        status: str | None = None,
        getport: int | None = None,
        altip: str | None = None,
        altmask: str | None = None,
    ) -> None:
        """Register a storage host (``down`` unless ``status`` says otherwise)."""
        self.trackers.call(
            "create_host",
            {
                "host": host,
                "ip": ip,
                "port": port,
                "status": status,
                "getport": getport,
                "altip": altip,
                "altmask": altmask,
            },
            settle=lambda: self._has_host(host),
        )

    def update_host(
        self,
        host: str,
        *,
        ip: str | None = None,
        port: int | None = None,
        status: str | None = None,
        getport: int | None = None,
        altip: str | None = None,
        altmask: str | None = None,
    ) -> None:
        """Change the given fields of a host."""
        self.trackers.call(
            "update_host",
            {
                "host": host,
                "ip": ip,
                "port": port,
                "status": status,
                "getport": getport,
                "altip": altip,
                "altmask": altmask,
            },
        )

    def delete_host(self, host: str) -> None:
        self.trackers.call("delete_host", {"host": host}, settle=lambda: not self._has_host(host))

    def _has_host(self, host: str) -> bool:
        return any(record.get("hostname") == host for record in self.get_hosts())

    def get_devices(self, devid: int | None = None) -> list[dict[str, str]]:
        """Devices as dicts of the tracker's fields (``devid``, ``hostid``, ``status``, ...)."""
        return _records(self.trackers.call("get_devices", {"devid": devid}), "devices", "dev")

    def create_device(self, hostname: str, devid: int, *, state: str | None = None) -> None:
        self.trackers.call(
            "create_device",
            {"hostname": hostname, "devid": devid, "state": state},
            settle=lambda: bool(self.get_devices(devid)),
        )

    def set_state(self, host: str, device: int, state: str) -> None:
        """Set a device's state (``alive``, ``down``, ``drain``, ``readonly``, ``dead``)."""
        self.trackers.call("set_state", {"host": host, "device": device, "state": state})

    def set_weight(self, host: str, device: int, weight: int) -> None:
        self.trackers.call("set_weight", {"host": host, "device": device, "weight": weight})

    def close(self) -> None:
        """Close every thread's tracker connection (later calls open new ones)."""
        self.trackers.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _class_args(
    domain: str, cls: str, mindevcount: int, replpolicy: str | None, hashtype: str | None
) -> dict[str, str | int | None]:
    return {
        "domain": domain,
        "class": cls,
        "mindevcount": mindevcount,
        "replpolicy": replpolicy,
        "hashtype": hashtype,
    }


def _records(reply: dict[str, str], count: str, prefix: str) -> list[dict[str, str]]:
    """``host1_hostid=..&host1_status=..`` style replies as a list of dicts."""
    records = []
    for index in range(1, int(reply.get(count) or 0) + 1):
        start = f"{prefix}{index}_"
        records.append(
            {name[len(start) :]: value for name, value in reply.items() if name.startswith(start)}
        )
    return records

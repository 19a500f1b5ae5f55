"""``manage.py mogilefs_status``: trackers, domain, classes, hosts and devices at a glance."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from storages_mogile.client import Admin, MogileFSError
from storages_mogile.clusters import Cluster, project_clusters
from storages_mogile.digits import parse_digits


class Command(BaseCommand):
    help = (
        "Show each MogileFS cluster the project uses: every tracker (up or down, with the "
        "round-trip time of a noop), the domain and its classes with their copies, and the "
        "hosts and devices with their state and free space. --json prints the same for "
        "monitoring. Exits 1 when a tracker is down, the domain is missing, or a device "
        "that should take files cannot be reached."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print JSON instead of tables"
        )

    def handle(self, *args: Any, as_json: bool, **options: Any) -> None:
        clusters = project_clusters()
        if not clusters:
            raise CommandError(
                "No MogileFS storage with a domain and trackers: configure one in STORAGES "
                "(see 'manage.py check')."
            )
        reports = [cluster_status(cluster) for cluster in clusters]
        if as_json:
            self.stdout.write(json.dumps(reports, indent=2))
        else:
            for report in reports:
                self._print(report)
        problems = [problem for report in reports for problem in report["problems"]]
        if problems:
            raise CommandError("; ".join(problems))

    def _print(self, report: dict[str, Any]) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"Domain {report['domain']}"))
        self.stdout.write("Trackers")
        for tracker in report["trackers"]:
            state = (
                f"up    {tracker['latency_ms']:.1f} ms"
                if tracker["up"]
                else self.style.ERROR(f"down  {tracker['error']}")
            )
            self.stdout.write(f"  {tracker['address']:<24} {state}")
        if report["classes"] is not None:
            self.stdout.write("Classes (copies)")
            for cls, copies in sorted(report["classes"].items()):
                self.stdout.write(f"  {cls:<24} {copies}")
        self.stdout.write("Hosts and devices")
        for host in report["hosts"]:
            self.stdout.write(f"  {host['name']:<24} {host['status']:<8} {host['address']}")
            for device in host["devices"]:
                free = "-" if device["mb_free"] is None else f"{device['mb_free']} MiB free"
                self.stdout.write(
                    f"    dev{device['devid']:<20} {device['status']:<8} "
                    f"{device['observed_state']:<12} {free}"
                )


def cluster_status(cluster: Cluster) -> dict[str, Any]:
    """What the trackers of one cluster say, as plain data; ``problems`` lists what is wrong."""
    report: dict[str, Any] = {
        "domain": cluster.domain,
        "trackers": [_tracker(address) for address in cluster.trackers],
        "classes": None,
        "hosts": [],
        "problems": [],
    }
    down = [t["address"] for t in report["trackers"] if not t["up"]]
    if down:
        report["problems"].append(f"tracker(s) down: {', '.join(down)}")
    if len(down) == len(cluster.trackers):
        return report
    try:
        with Admin(list(cluster.trackers)) as admin:
            domains, hosts, devices = admin.get_domains(), admin.get_hosts(), admin.get_devices()
    except MogileFSError as exc:
        report["problems"].append(f"the trackers could not be asked: {exc}")
        return report
    report["classes"] = domains.get(cluster.domain)
    if report["classes"] is None:
        report["problems"].append(f"domain {cluster.domain!r} does not exist")
    report["hosts"] = [_host(host, devices) for host in hosts]
    for host in report["hosts"]:
        for device in host["devices"]:
            if device["status"] == "alive" and device["observed_state"] == "unreachable":
                report["problems"].append(f"dev{device['devid']} on {host['name']} unreachable")
    return report


def _tracker(address: str) -> dict[str, Any]:
    """Whether one tracker answers a noop, and how fast."""
    started = time.monotonic()
    try:
        with Admin([address], timeout=5.0, backoff=0.0) as admin:
            admin.trackers.call("noop", {})
    except MogileFSError as exc:
        return {"address": address, "up": False, "error": str(exc), "latency_ms": None}
    latency = (time.monotonic() - started) * 1000
    return {"address": address, "up": True, "error": None, "latency_ms": round(latency, 2)}


def _host(host: dict[str, str], devices: list[dict[str, str]]) -> dict[str, Any]:
    port = host.get("http_port", "")
    return {
        "name": host.get("hostname", ""),
        "status": host.get("status", ""),
        "address": f"{host.get('hostip', '')}:{port}",
        "devices": [
            {
                "devid": int(device["devid"]),
                "status": device.get("status", ""),
                "observed_state": device.get("observed_state") or "unknown",
                "mb_free": _free_mb(device),
                "mb_total": _int_or_none(device.get("mb_total")),
            }
            for device in devices
            if device.get("hostid") == host.get("hostid")
        ],
    }


def _free_mb(device: dict[str, str]) -> int | None:
    """Free space: ``mb_free`` (dev tracker), else total less used (mogilefsd)."""
    free = _int_or_none(device.get("mb_free"))
    if free is not None:
        return free
    total, used = _int_or_none(device.get("mb_total")), _int_or_none(device.get("mb_used"))
    return None if total is None or used is None else total - used


def _int_or_none(value: str | None) -> int | None:
    return parse_digits(value)

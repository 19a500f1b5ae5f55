"""Tracker commands on domains, classes, hosts, devices and settings.

Like :mod:`.files`, each handler returns the ``OK`` arguments or raises
CommandError, with mogilefsd 2.73's checks in its order. Some quirks are
kept on purpose because clients meet them on a real tracker:
``delete_class`` without a class answers ``class_not_found`` (mogilefsd
tests the domain twice), the admin commands say ``domain_not_found`` where
file commands say ``unreg_domain``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .errors import CommandError
from .files import HASH_TYPES
from .metadata import DEFAULT_CLASS, Duplicate, HasClasses, HasFiles
from .perl import integer, number, truthy
from .replication import REPLICATION_POLICIES, parse_policy
from .topology import DEVICE_STATES, HOST_STATES, Topology

if TYPE_CHECKING:
    from .tracker import Tracker

Reply = dict[str, Any]


# -- domains and classes ------------------------------------------------------


def get_domains(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Every domain with its classes, the implicit ``default`` class included."""
    store = tracker.store
    reply: Reply = {}
    domains = store.domains()
    for number_, (dmid, name) in enumerate(domains, 1):
        reply[f"domain{number_}"] = name
        classes = store.classes(dmid)
        for index, cls in enumerate(classes, 1):
            prefix = f"domain{number_}class{index}"
            reply[f"{prefix}name"] = cls.name
            reply[f"{prefix}mindevcount"] = cls.mindevcount
            reply[f"{prefix}replpolicy"] = cls.replpolicy
            reply[f"{prefix}hashtype"] = cls.hashtype
        reply[f"domain{number_}classes"] = len(classes)
    reply["domains"] = len(domains)
    return reply


def create_domain(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Add a domain (names are not validated, as in mogilefsd)."""
    name = args.get("domain", "")
    if not truthy(name):
        raise CommandError("no_domain")
    try:
        tracker.store.create_domain(name)
    except Duplicate:
        raise CommandError("domain_exists") from None
    return {"domain": name}


def delete_domain(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Remove a domain that has neither files nor classes."""
    name = args.get("domain", "")
    if not truthy(name):
        raise CommandError("no_domain")
    dmid = tracker.store.domain_id(name)
    if dmid is None:
        raise CommandError("domain_not_found")
    try:
        tracker.store.delete_domain(dmid)
    except HasFiles:
        raise CommandError("domain_has_files") from None
    except HasClasses:
        raise CommandError("domain_has_classes") from None
    return {"domain": name}


def create_class(tracker: Tracker, args: dict[str, str], *, update: bool = False) -> Reply:
    """Add a class to a domain, or with ``update`` change one."""
    domain, name = args.get("domain", ""), args.get("class", "")
    if not domain:
        raise CommandError("no_domain")
    if not name:
        raise CommandError("no_class")
    mindevcount = integer(args.get("mindevcount"))
    if number(args.get("mindevcount")) <= 0:
        raise CommandError("invalid_mindevcount")
    replpolicy = args.get("replpolicy") if truthy(args.get("replpolicy")) else None
    if replpolicy:
        check_policy(replpolicy)
    hashtype = args.get("hashtype") if truthy(args.get("hashtype")) else None
    if hashtype and hashtype != "NONE" and hashtype not in HASH_TYPES:
        raise CommandError("invalid_hashtype")

    store = tracker.store
    dmid = store.domain_id(domain)
    if dmid is None:
        raise CommandError("domain_not_found")
    existing = store.class_by_name(dmid, name)
    if update and existing is not None and existing.implicit:
        update = False  # the implicit default class gets its row on first change
    if update:
        if existing is None:
            raise CommandError("class_not_found")
        classid = existing.classid
    else:
        try:
            classid = store.create_class(dmid, name)
        except Duplicate:
            raise CommandError("class_exists") from None
    store.update_class(
        dmid, classid, mindevcount=mindevcount, replpolicy=replpolicy, hashtype=hashtype
    )
    return {"class": name, "mindevcount": mindevcount, "domain": domain}


def update_class(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Change a class's mindevcount (required), policy or hash type."""
    return create_class(tracker, args, update=True)


def check_policy(policy: str) -> None:
    """``invalid_replpolicy`` unless the dev server implements the policy."""
    parsed = parse_policy(policy)
    if parsed is None:
        raise CommandError(
            "invalid_replpolicy", f"Failed to parse replication policy string: {policy}"
        )
    if parsed[0] not in REPLICATION_POLICIES:
        known = ", ".join(REPLICATION_POLICIES)
        raise CommandError(
            "invalid_replpolicy",
            f"Failed to load replication policy class MogileFS::ReplicationPolicy::{parsed[0]}: "
            f"the dev server implements {known}",
        )


def delete_class(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Remove a class without files; ``default`` cannot be removed."""
    domain, name = args.get("domain", ""), args.get("class", "")
    if not domain:
        raise CommandError("no_domain")
    if name == DEFAULT_CLASS:
        raise CommandError("nodel_default_class")
    store = tracker.store
    dmid = store.domain_id(domain)
    if dmid is None:
        raise CommandError("domain_not_found")
    existing = store.class_by_name(dmid, name) if name else None
    if existing is None:
        raise CommandError("class_not_found")
    try:
        store.delete_class(dmid, existing.classid)
    except HasFiles:
        raise CommandError("class_has_files") from None
    return {"domain": domain, "class": name}


# -- hosts and devices ------------------------------------------------------------


def get_hosts(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Every host, or the one with ``hostid``."""
    reply: Reply = {"hosts": 0}
    for host in tracker.store.hosts():
        if "hostid" in args and host.hostid != number(args["hostid"]):
            continue
        reply["hosts"] += 1
        prefix = f"host{reply['hosts']}_"
        fields = {
            "hostid": host.hostid,
            "hostname": host.hostname,
            "status": host.status,
            "hostip": host.hostip,
            "http_port": host.http_port,
            "http_get_port": host.http_get_port,
            "altip": host.altip,
            "altmask": host.altmask,
        }
        reply.update(
            {prefix + name: "" if value is None else value for name, value in fields.items()}
        )
    return reply


def create_host(tracker: Tracker, args: dict[str, str], *, update: bool = False) -> Reply:
    """Add a host (``ip`` and ``port`` required), or with ``update`` change one."""
    name = args.get("host", "")
    if not truthy(name):
        raise CommandError("no_host")
    store = tracker.store
    host = store.host_by_name(name)
    args = dict(args)
    if update:
        if host is None:
            raise CommandError("host_not_found")
    else:
        if host is not None:
            raise CommandError("host_exists")
        if not truthy(args.get("ip")):
            raise CommandError("no_ip")
        if not truthy(args.get("port")):
            raise CommandError("no_port")
        args["status"] = args.get("status") or "down"
    if args.get("status") and args["status"] not in HOST_STATES:
        raise CommandError("unknown_state")
    hostid = host.hostid if host else store.create_host(name, args["ip"], args["status"])
    renamed = {"ip": "hostip", "port": "http_port", "getport": "http_get_port"}
    fields: dict[str, Any] = {}
    for argument, column in [
        *renamed.items(),
        ("status", "status"),
        ("altip", "altip"),
        ("altmask", "altmask"),
    ]:
        if argument in args:
            value = args[argument]
            fields[column] = (
                integer(value) if column.endswith("port") and value else (value or None)
            )
    store.update_host(hostid, fields)
    return {"hostid": hostid, "hostname": name}


def update_host(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Change a host's address, ports or state."""
    return create_host(tracker, args, update=True)


def delete_host(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Remove a host that has no devices."""
    store = tracker.store
    host = store.host_by_name(args.get("host", ""))
    if host is None:
        raise CommandError("unknown_host")
    if any(device.hostid == host.hostid for device in store.devices()):
        raise CommandError("host_not_empty")
    store.delete_host(host.hostid)
    return {}


def get_devices(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Every device (or the one with ``devid``) with its state and space."""
    topology = Topology.load(tracker.store)
    reply: Reply = {"devices": 0}
    for device in topology.devices.values():
        if "devid" in args and device.devid != number(args["devid"]):
            continue
        reply["devices"] += 1
        usage = tracker.usage.usage(topology, device.devid)
        fields = {
            "devid": device.devid,
            "hostid": device.hostid,
            "status": device.status,
            "observed_state": "writeable" if usage else "unreachable",
            "weight": device.weight,
            "mb_total": usage.total_mb if usage else "",
            "mb_used": usage.used_mb if usage else "",
            "mb_free": usage.free_mb if usage else "",
            "mb_asof": "",
            "utilization": "",
            "reject_bad_md5": 1,
        }
        reply.update({f"dev{reply['devices']}_{name}": value for name, value in fields.items()})
    return reply


def create_device(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Add a device to a host (by ``hostid`` or ``hostname``)."""
    status = args.get("state") if truthy(args.get("state")) else "alive"
    if status not in DEVICE_STATES:
        raise CommandError("invalid_state")
    devid = args.get("devid") or ""
    if not (truthy(devid) and re.fullmatch(r"\d+", devid)):
        raise CommandError("invalid_devid")
    store = tracker.store
    if truthy(args.get("hostid")) and re.fullmatch(r"\d+", args["hostid"]):
        host = store.host(int(args["hostid"]))
        if host is None:
            raise CommandError("unknown_hostid")
    elif truthy(args.get("hostname")):
        host = store.host_by_name(args["hostname"])
        if host is None:
            raise CommandError("unknown_host")
    else:
        raise CommandError("bad_args", "No hostid/hostname parameter")
    try:
        store.create_device(int(devid), host.hostid, status)
    except Duplicate:
        raise CommandError("existing_devid") from None
    if tracker.on_device_created:
        tracker.on_device_created(int(devid), host.hostid)
    return {}


def device_of_host(tracker: Tracker, hostname: str, devid: int) -> Any:
    """The device ``devid``, checked to be on host ``hostname``."""
    device = tracker.store.device(devid)
    if device is None:
        raise CommandError("no_device")
    host = tracker.store.host(device.hostid)
    if host is None or host.hostname != hostname:
        raise CommandError("host_mismatch")
    return device


def set_state(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Change a device's state (alive, down, readonly, drain, dead)."""
    hostname, devid, state = args.get("host", ""), integer(args.get("device")), args.get("state")
    if not (truthy(hostname) and devid and state in DEVICE_STATES):
        raise CommandError("bad_params")
    device = device_of_host(tracker, hostname, devid)
    if device.status == "dead" and state != "dead":
        raise CommandError("state_too_high")
    tracker.store.set_device_state(devid, state)
    return {}


def set_weight(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Change a device's weight (how often get_paths lists it first)."""
    hostname, devid, weight = (
        args.get("host", ""),
        integer(args.get("device")),
        integer(args.get("weight")),
    )
    if not (truthy(hostname) and devid and weight >= 0):
        raise CommandError("bad_params")
    device_of_host(tracker, hostname, devid)
    tracker.store.set_device_weight(devid, weight)
    return {}


# -- settings and diagnostics ------------------------------------------------------


def server_settings(tracker: Tracker, args: dict[str, str]) -> Reply:
    """All server settings as ``key_N``/``value_N``."""
    reply: Reply = {}
    for index, (name, value) in enumerate(tracker.store.server_settings().items(), 1):
        reply.update({"key_count": index, f"key_{index}": name, f"value_{index}": value})
    return reply


def server_setting(tracker: Tracker, args: dict[str, str]) -> Reply:
    """One server setting."""
    name = args.get("key", "")
    if not truthy(name):
        raise CommandError("bad_params")
    return {"key": name, "value": tracker.store.server_settings().get(name)}


def noop(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Do nothing (a keep-alive and connectivity check)."""
    return {}


def sleep(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Answer after ``duration`` seconds (default 10)."""
    duration = int(number(args["duration"])) if truthy(args.get("duration")) else 10
    tracker.stopping.wait(max(duration, 0))
    return {}


def test(tracker: Tracker, args: dict[str, str]) -> Reply:
    """A debug command; ``crash=1`` makes it fail as mogilefsd's does."""
    if truthy(args.get("crash")):
        raise CommandError("failure")
    return {}


COMMANDS = {
    "get_domains": get_domains,
    "create_domain": create_domain,
    "delete_domain": delete_domain,
    "create_class": create_class,
    "update_class": update_class,
    "delete_class": delete_class,
    "get_hosts": get_hosts,
    "create_host": create_host,
    "update_host": update_host,
    "delete_host": delete_host,
    "get_devices": get_devices,
    "create_device": create_device,
    "set_state": set_state,
    "set_weight": set_weight,
    "server_settings": server_settings,
    "server_setting": server_setting,
    "noop": noop,
    "sleep": sleep,
    "test": test,
}

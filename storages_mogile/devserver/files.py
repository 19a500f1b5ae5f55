"""Tracker commands on files: create_open ... updateclass.

Each handler takes the tracker and the decoded request arguments and
returns the ``OK`` reply's arguments, or raises CommandError. The checks
come in mogilefsd 2.73's order with its error codes, which differ between
commands for the same problem (an unknown key is ``unknown_key`` for
``get_paths`` but ``invalid_key`` for ``updateclass``).
"""

from __future__ import annotations

import logging
import random
import re
import time
from typing import TYPE_CHECKING, Any

from . import transfer
from .errors import CommandError
from .metadata import Duplicate, FileRow, to_bytes
from .perl import integer, number, truthy
from .topology import Topology

if TYPE_CHECKING:
    from .tracker import Tracker

logger = logging.getLogger(__name__)

# Longest key accepted, in bytes: the width of the key column of a
# MogileFS store on MySQL or PostgreSQL (docs/devserver.md, deviations).
MAX_KEY_BYTES = 255
MAX_DESTINATIONS = 3
HASH_TYPES = {"MD5": ("md5", 32)}

# Regex constructs of a list_keys prefix that make its after-check backtrack.
_QUANTIFIERS = re.compile(r"(?<!\\)[*+?{]")
_REPEATED_GROUP = re.compile(r"(?<!\\)\)[*+{]")

Reply = dict[str, Any]


# -- argument checks shared by the commands ---------------------------------


def check_domain(tracker: Tracker, args: dict[str, str]) -> int:
    """The dmid of the ``domain`` argument (``no_domain``, ``unreg_domain``)."""
    name = args.get("domain", "")
    if not name:
        raise CommandError("no_domain")
    dmid = tracker.store.domain_id(name)
    if dmid is None:
        raise CommandError("unreg_domain")
    return dmid


def valid_key(key: str) -> bool:
    """mogilefsd's key check: present and not empty (``0`` is a key)."""
    return bool(key)


def check_key_length(key: str) -> None:
    """Refuse keys longer than a SQL store's key column (``ERR db``)."""
    if len(to_bytes(key)) > MAX_KEY_BYTES:
        logger.info("key of %d bytes refused: at most %d bytes", len(to_bytes(key)), MAX_KEY_BYTES)
        raise CommandError("db")


def existing_file(
    tracker: Tracker, dmid: int, key: str, *, unknown: str = "unknown_key"
) -> FileRow:
    """The file stored under ``key`` (``no_key``, then ``unknown``)."""
    if not valid_key(key):
        raise CommandError("no_key")
    found = tracker.store.file_by_key(dmid, key)
    if found is None:
        raise CommandError(unknown)
    return found


# -- create_open / create_close ----------------------------------------------


def create_open(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Open a new file: choose destination devices and a fid."""
    dmid = check_domain(tracker, args)
    key = args["key"] if truthy(args.get("key", "")) else ""
    multi = truthy(args.get("multi_dest"))
    size = number(args["size"]) if truthy(args.get("size")) else None
    wanted_fid = integer(args["fid"]) if truthy(args.get("fid")) else None
    profile = Profile(truthy(args.get("debug_profile")))

    classid = 0
    if truthy(args.get("class", "")):
        found = tracker.store.class_by_name(dmid, args["class"])
        if found is None:
            raise CommandError("unreg_class")
        classid = found.classid

    profile.mark("find_deviceid")
    topology = Topology.load(tracker.store)
    destinations = choose_destinations(tracker, topology, size, MAX_DESTINATIONS if multi else 1)
    if not destinations:
        raise CommandError("no_devices")

    profile.mark("register_tempfile")
    check_key_length(key)
    try:
        fid = tracker.store.register_tempfile(wanted_fid or None, dmid, key, classid, destinations)
    except Duplicate:
        raise CommandError("fid_in_use") from None
    profile.mark("end")

    reply: Reply = {"fid": fid, **profile.fields()}
    if multi:
        for number_, devid in enumerate(destinations, 1):
            reply[f"devid_{number_}"] = devid
            reply[f"path_{number_}"] = topology.url(devid, fid)
        reply["dev_count"] = len(destinations)
    else:
        reply["devid"] = destinations[0]
        reply["path"] = topology.url(destinations[0], fid)
    return reply


def choose_destinations(
    tracker: Tracker, topology: Topology, size: float | None, wanted: int
) -> list[int]:
    """Up to ``wanted`` writable devices, each on a different host.

    With a size hint, only devices known to have more free space qualify;
    if no device's free space is known, all writable ones do.
    """
    candidates = [devid for devid in topology.devices if topology.writable(devid)]
    if size:
        usages = {devid: tracker.usage.usage(topology, devid) for devid in candidates}
        roomy = [
            devid for devid, usage in usages.items() if usage and usage.free_mb * 1024 * 1024 > size
        ]
        candidates = roomy or [devid for devid, usage in usages.items() if usage is None]
    random.shuffle(candidates)  # equal free space everywhere: any order is as good
    chosen: list[int] = []
    hosts: set[int] = set()
    for devid in candidates:
        hostid = topology.devices[devid].hostid
        if hostid not in hosts and len(chosen) < wanted:
            chosen.append(devid)
            hosts.add(hostid)
    return chosen


class Profile:
    """``debug_profile=1`` timings: how long each stage of the command took."""

    def __init__(self, enabled: bool) -> None:
        self._points: list[tuple[str, float]] = [("begin", time.perf_counter())] if enabled else []

    def mark(self, name: str) -> None:
        if self._points:
            self._points.append((name, time.perf_counter()))

    def fields(self) -> Reply:
        fields: Reply = {}
        for index, ((name, start), (_, end)) in enumerate(zip(self._points, self._points[1:]), 1):
            fields[f"prof_{index}_name"] = name
            fields[f"prof_{index}_time"] = f"{end - start:.3f}"
        if self._points:
            fields["profpoints"] = len(self._points) - 1
        return fields


def create_close(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Close a file opened by create_open: verify the upload and store it.

    Any failure after the temp file is found consumes it (the upload is
    queued for removal); the client has to start again with create_open.
    """
    check_domain(tracker, args)
    key = args.get("key", "")
    for name in ("fid", "devid", "path"):
        if not truthy(args.get(name)):
            raise CommandError(f"no_{name}")
    fid, devid, path = integer(args["fid"]), integer(args["devid"]), args["path"]
    checksum = parse_checksum(args["checksum"]) if truthy(args.get("checksum")) else None

    topology = Topology.load(tracker.store)
    expected = topology.url(devid, fid)
    if expected is None:
        raise CommandError("failure")  # mogilefsd dies building the URL of an unknown device
    if path != expected:
        raise CommandError("bogus_args")

    store = tracker.store
    temp = store.take_tempfile(fid)
    if temp is None:
        raise CommandError("no_temp_file")

    def failed(code: str, text: str | None = None) -> CommandError:
        store.discard_upload(fid, devid)
        return CommandError(code, text)

    if devid not in temp.devids:
        valid = ",".join(map(str, temp.devids))
        raise failed(
            "invalid_destdev", f"File uploaded to invalid dest {devid}. Valid devices were: {valid}"
        )
    if not valid_key(key):
        store.discard_upload(fid, devid)  # no key: the client gave up on the file
        return {}

    wanted = integer(args["size"]) if truthy(args.get("size")) else -1
    found = transfer.head_size(path)
    if found.size is None or found.missing:
        kind = "missing" if found.missing else "cantreach"
        raise failed(
            "size_verify_error",
            f"Expected: {wanted}; actual: 0 ({kind}); path: {path}; error: {found.error}",
        )
    if wanted > -1 and wanted != found.size:
        raise failed("size_mismatch", f"Expected: {wanted}; actual: {found.size}; path: {path}")
    if checksum and truthy(args.get("checksumverify")):
        verify_checksum(checksum, path, failed)
    try:
        check_key_length(key)
    except CommandError:
        store.discard_upload(fid, devid)
        raise

    store.close_file(temp, key, devid, found.size)
    if checksum:
        save_checksum(tracker, temp.dmid, temp.classid, fid, checksum)
    return {}


def parse_checksum(text: str) -> tuple[str, str]:
    """``(hashtype, hex)`` of a ``checksum`` argument like ``MD5:0123...``."""
    hashtype, _, digest = text.partition(":")
    expected = HASH_TYPES.get(hashtype)
    if expected is None or not re.fullmatch(f"[0-9a-fA-F]{{{expected[1]}}}", digest):
        raise CommandError("invalid_checksum_format")
    return hashtype, digest.lower()


def verify_checksum(checksum: tuple[str, str], path: str, failed: Any) -> None:
    """Compare the uploaded file's digest with the client's (``checksumverify=1``)."""
    hashtype, digest = checksum
    try:
        actual = transfer.digest(path, HASH_TYPES[hashtype][0])
    except transfer.TransferError as exc:
        raise failed("size_verify_error", str(exc)) from exc
    if actual != digest:
        raise failed(
            "checksum_mismatch",
            f"Expected: {hashtype}:{digest}; actual: {hashtype}:{actual}; path: {path}",
        )


def save_checksum(
    tracker: Tracker, dmid: int, classid: int, fid: int, checksum: tuple[str, str]
) -> None:
    """Keep the checksum if the file's class records checksums."""
    if tracker.store.class_by_id(dmid, classid).hashtype != "NONE":
        tracker.store.save_checksum(fid, *checksum)


# -- reading -------------------------------------------------------------------


def get_paths(tracker: Tracker, args: dict[str, str]) -> Reply:
    """URLs of a file's copies, in random order.

    Copies are checked with a HEAD one by one until one is found intact
    (unless ``noverify=1``); the ones after it are listed unchecked, as
    mogilefsd does. Copies on unreadable devices are only offered if
    nothing else is.
    """
    dmid = check_domain(tracker, args)
    found = existing_file(tracker, dmid, args.get("key", ""))
    pathcount = max(2, integer(args["pathcount"]) if truthy(args.get("pathcount")) else 2)
    noverify = truthy(args.get("noverify"))

    topology = Topology.load(tracker.store)
    paths: list[str] = []
    drain: list[str] = []
    backup = None
    for devid in weighted_order(topology, tracker.store.devids_of(found.fid)):
        url = topology.url(devid, found.fid, reading=True)
        if url is None:
            continue
        if not topology.readable(devid):
            backup = url
            continue
        if not (paths or noverify or transfer.head_size(url).size == found.length):
            continue
        if topology.devices[devid].status == "drain":
            drain.append(url)
            continue
        paths.append(url)
        if len(paths) == pathcount:
            break
    paths.extend(drain[: pathcount - len(paths)])
    if not paths and backup:
        paths.append(backup)
    reply: Reply = {"paths": len(paths)}
    reply.update({f"path{index}": url for index, url in enumerate(paths, 1)})
    return reply


def weighted_order(topology: Topology, devids: list[int]) -> list[int]:
    """Devices in random order, heavier (by weight) devices more likely first."""
    order: list[int] = []
    pool = [
        (devid, (topology.devices[devid].weight if devid in topology.devices else 0) or 100)
        for devid in devids
    ]
    while pool:
        pick = random.choices(range(len(pool)), weights=[weight for _, weight in pool])[0]
        order.append(pool.pop(pick)[0])
    return order


def file_info(tracker: Tracker, args: dict[str, str]) -> Reply:
    """What the tracker knows of a file: fid, class, length, copies."""
    dmid = check_domain(tracker, args)
    key = args.get("key", "")
    found = existing_file(tracker, dmid, key)
    store = tracker.store
    file_class = store.class_by_id(found.dmid, found.classid)
    reply: Reply = {
        "fid": found.fid,
        "domain": store.domain_name(found.dmid),
        "class": file_class.name,
        "key": key,
        "length": found.length,
        "devcount": found.devcount,
    }
    if file_class.hashtype != "NONE":
        stored = store.checksum(found.fid)
        reply["checksum"] = f"{stored[0]}:{stored[1]}" if stored else "MISSING"
    if truthy(args.get("devices")):
        reply["devids"] = ",".join(map(str, store.devids_of(found.fid)))
    return reply


def file_debug(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Everything about a fid: file row, temp file, queue entries, copies."""
    store = tracker.store
    if truthy(args.get("fid")):
        fid = integer(args["fid"])
        found = store.file(fid)
    else:
        dmid = check_domain(tracker, args)
        found = existing_file(tracker, dmid, args.get("key", ""))
        fid = found.fid
    reply: Reply = {}
    if found:
        reply.update(
            {
                "fid_fid": found.fid,
                "fid_dmid": found.dmid,
                "fid_dkey": found.key,
                "fid_length": found.length,
                "fid_classid": found.classid,
                "fid_devcount": found.devcount,
                "fid_domain": store.domain_name(found.dmid),
                "fid_class": store.class_by_id(found.dmid, found.classid).name,
            }
        )
    temp = store.tempfile(fid)
    if temp:
        reply.update(
            {
                "tempfile_dmid": temp.dmid,
                "tempfile_dkey": temp.key,
                "tempfile_classid": temp.classid,
                "tempfile_devids": ",".join(map(str, temp.devids)),
            }
        )
    for prefix, entry in (
        ("replqueue", store.replication_entry(fid)),
        ("delqueue", store.deletion_entry(fid)),
    ):
        for name, value in (entry or {}).items():
            reply[f"{prefix}_{name}"] = "" if value is None else value
    topology = Topology.load(store)
    devids = store.devids_of(fid)
    for devid in devids:
        url = topology.url(devid, fid, reading=True)
        if url:
            reply[f"devpath_{devid}"] = url
    if devids:
        reply["devids"] = ",".join(map(str, devids))
    stored = store.checksum(fid)
    reply["checksum"] = f"{stored[0]}:{stored[1]}" if stored else "NONE"
    return reply


def list_keys(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Keys of a domain in byte order, paged with ``after``/``limit``.

    An empty page is an error (``none_match``), and on SQLite, which this
    follows, the prefix matches ASCII letters case-insensitively.
    """
    dmid = check_domain(tracker, args)
    prefix, after = args.get("prefix") or "", args.get("after") or ""
    if prefix and truthy(after) and not _matches_as_regex(prefix, after):
        raise CommandError("after_mismatch")
    limit = integer(args["limit"]) if truthy(args.get("limit")) else 1000
    keys = tracker.store.keys_like(dmid, prefix, after, min(limit, 1000))
    if not keys:
        raise CommandError("none_match")
    reply: Reply = {"key_count": len(keys), "next_after": max(keys, key=to_bytes)}
    reply.update({f"key_{index}": key for index, key in enumerate(keys, 1)})
    return reply


def _matches_as_regex(prefix: str, after: str) -> bool:
    """mogilefsd's check ``$after =~ /^$prefix/``: the prefix is a regex.

    A pattern that can backtrack exponentially (a repeated group, or more
    than two quantifiers) is refused rather than run: one request could
    otherwise hold a tracker thread for hours. A pattern that is not a
    valid regex fails as it does in mogilefsd.
    """
    if len(_QUANTIFIERS.findall(prefix)) > 2 or _REPEATED_GROUP.search(prefix):
        raise CommandError(
            "bad_params",
            "The prefix, which the tracker reads as a regular expression to check the "
            "after-value, could run away (a repeated group, or more than two quantifiers); "
            "the dev tracker refuses it",
        )
    try:
        return re.match(prefix, after) is not None
    except re.error:
        raise CommandError("failure") from None


def list_fids(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Files with a fid above ``from``; ``to`` is a count (at most 500)."""
    after = integer(args["from"]) if truthy(args.get("from")) else 0
    count = integer(args["to"]) if truthy(args.get("to")) else 0
    count = count or 100
    if count > 500 or count < 0:
        count = 500
    store = tracker.store
    rows = store.files_after(after, count)
    reply: Reply = {"fid_count": len(rows)}
    for index, row in enumerate(rows, 1):
        reply[f"fid_{index}_fid"] = row.fid
        reply[f"fid_{index}_domain"] = store.domain_name(row.dmid)
        reply[f"fid_{index}_class"] = store.class_by_id(row.dmid, row.classid).name
        reply[f"fid_{index}_key"] = row.key
        reply[f"fid_{index}_length"] = row.length
        reply[f"fid_{index}_devcount"] = row.devcount
    return reply


# -- changing ------------------------------------------------------------------


def delete(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Delete a file; its storage copies are removed in the background."""
    dmid = check_domain(tracker, args)
    found = existing_file(tracker, dmid, args.get("key", ""))
    tracker.store.delete_file(found.fid)
    return {}


def rename(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Give a file another key (``key_exists`` if the new key is taken)."""
    dmid = check_domain(tracker, args)
    source, target = args.get("from_key", ""), args.get("to_key", "")
    if not (valid_key(source) and valid_key(target)):
        raise CommandError("no_key")
    found = existing_file(tracker, dmid, source)
    check_key_length(target)
    if not tracker.store.rename(found.fid, target):
        raise CommandError("key_exists")
    return {}


def updateclass(tracker: Tracker, args: dict[str, str]) -> Reply:
    """Move a file to another class; replication then fixes its copies."""
    dmid = check_domain(tracker, args)
    key = args.get("key", "")
    if not valid_key(key):
        raise CommandError("no_key")
    if not truthy(args.get("class", "")):
        raise CommandError("no_class")
    new_class = tracker.store.class_by_name(dmid, args["class"])
    if new_class is None:
        raise CommandError("class_not_found")
    found = existing_file(tracker, dmid, key, unknown="invalid_key")
    if not tracker.store.devids_of(found.fid):
        raise CommandError("no_devices")
    if found.classid != new_class.classid:
        tracker.store.set_file_class(found.fid, new_class.classid)
    return {}


COMMANDS = {
    "create_open": create_open,
    "create_close": create_close,
    "get_paths": get_paths,
    "file_info": file_info,
    "file_debug": file_debug,
    "list_keys": list_keys,
    "list_fids": list_fids,
    "delete": delete,
    "rename": rename,
    "updateclass": updateclass,
}

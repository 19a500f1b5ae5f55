"""The background worker: replication and removal of storage copies.

Like mogilefsd's replicate and delete workers it works from queues in the
metadata. A file closed (or moved to another class) is queued for
replication: the worker copies it over HTTP, from a node that has it to a
writable device on another host, until the class's mindevcount is met, and
removes extra copies when the class asks for fewer. A deleted file is
queued for removal: the worker sends ``DELETE`` to every node holding a
copy. Work that fails (a node is down) is retried with a growing delay.
"""

from __future__ import annotations

import logging
import re
import threading
import time

from . import transfer
from .metadata import FileRow, MetadataStore
from .topology import Topology

logger = logging.getLogger(__name__)

REPLICATION_POLICIES = ("MultipleHosts", "MultipleDevices")
MAX_RETRY_DELAY = 5.0
_POLICY = re.compile(r"\s*(\w+)\s*(?:\(\s*(\d*)\s*\))?\s*")


def parse_policy(policy: str) -> tuple[str, int | None] | None:
    """``("MultipleHosts", 3)`` for ``MultipleHosts(3)``; ``None`` if unparsable."""
    match = _POLICY.fullmatch(policy)
    if not match:
        return None
    return match.group(1), int(match.group(2)) if match.group(2) else None


class Replicator:
    """Works the replication and deletion queues every ``interval`` seconds."""

    def __init__(self, store: MetadataStore, interval: float = 0.2) -> None:
        self.store = store
        self.interval = interval
        self._stop = threading.Event()
        self._pass_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> Replicator:
        """Start the worker thread (a no-op if it runs)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._work, name="devserver-replicator", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the worker thread after its current pass."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.run_once()
                except Exception:  # keep the worker alive; the next pass retries
                    logger.exception("replication pass failed")
                self._stop.wait(self.interval)
        finally:
            self.store.release_thread()

    def run_once(self) -> int:
        """Work every due queue entry once; returns how many were handled."""
        with self._pass_lock:
            now = time.time()
            deletions = self.store.due_deletions(now)
            for fid, failures in deletions:
                self.remove_copies(fid, failures)
            replications = self.store.due_replications(now)
            for fid, failures in replications:
                self.replicate(fid, failures)
            return len(deletions) + len(replications)

    def retry_at(self, failures: int) -> float:
        return time.time() + min(MAX_RETRY_DELAY, self.interval * 2 ** (failures + 1))

    # -- deletion ----------------------------------------------------------

    def remove_copies(self, fid: int, failures: int) -> None:
        """Delete every storage copy of a deleted fid."""
        topology = Topology.load(self.store)
        left = False
        for devid in self.store.devids_of(fid):
            url = topology.url(devid, fid)
            if url is None or topology.lost(devid) or transfer.delete(url):
                self.store.remove_copy(fid, devid)
            else:
                left = True
        if left:
            logger.info("fid %d: some copies could not be deleted yet, retrying", fid)
            self.store.retry_deletion(fid, self.retry_at(failures))
        else:
            self.store.finish_deletion(fid)

    # -- replication ---------------------------------------------------------

    def replicate(self, fid: int, failures: int) -> None:
        """Bring a file to the number of copies its class wants."""
        store = self.store
        found = store.file(fid)
        if found is None:
            store.finish_replication(fid)
            return
        file_class = store.class_by_id(found.dmid, found.classid)
        _, count = parse_policy(file_class.replpolicy) or ("MultipleHosts", None)
        wanted = count or file_class.mindevcount
        topology = Topology.load(store)
        holders = []
        for devid in store.devids_of(fid):
            if topology.lost(devid):
                store.remove_copy(fid, devid)
            else:
                holders.append(devid)
        if len(holders) > wanted:
            self.trim(found, holders, wanted, topology)
        while len(holders) < wanted:
            destination = self.destination(topology, holders)
            if destination is None or not self.copy(
                found, holders, destination, topology, file_class.hashtype
            ):
                logger.info("fid %d has %d of %d copies; retrying later", fid, len(holders), wanted)
                store.retry_replication(fid, self.retry_at(failures))
                return
            holders.append(destination)
        store.finish_replication(fid)

    @staticmethod
    def destination(topology: Topology, holders: list[int]) -> int | None:
        """A writable device for a new copy, on a host without one if possible.

        Both policies prefer another host; with no such host left a second
        device of the same host is used, as mogilefsd does when desperate.
        """
        busy_hosts = {
            topology.devices[devid].hostid for devid in holders if devid in topology.devices
        }
        free = [
            devid for devid in topology.devices if topology.writable(devid) and devid not in holders
        ]
        ideal = [devid for devid in free if topology.devices[devid].hostid not in busy_hosts]
        candidates = ideal or free
        return candidates[0] if candidates else None

    def copy(
        self,
        found: FileRow,
        holders: list[int],
        destination: int,
        topology: Topology,
        hashtype: str,
    ) -> bool:
        """Copy a file from any readable holder to ``destination``.

        As mogilefsd does, a file with a recorded checksum is hashed on the
        way and a source that does not match is passed over (its copy is
        damaged); a file of a hash-typed class without one gets the digest
        of the copy as its checksum.
        """
        target = topology.url(destination, found.fid)
        sources = [topology.url(devid, found.fid) for devid in holders if topology.readable(devid)]
        if target is None:
            return False
        recorded = self.store.checksum(found.fid)
        algorithm = "md5" if recorded or hashtype != "NONE" else None
        for origin in sources:
            if origin is None:
                continue
            try:
                digest = transfer.copy(origin, target, found.length, algorithm=algorithm)
            except transfer.TransferError as exc:
                logger.info("fid %d: %s", found.fid, exc)
                continue
            if recorded and digest != recorded[1]:
                logger.info(
                    "fid %d: checksum mismatch on GET from %s: expected %s, actual %s",
                    found.fid,
                    origin,
                    recorded[1],
                    digest,
                )
                transfer.delete(target)
                continue
            if digest and not recorded:
                self.store.save_checksum(found.fid, "MD5", digest)
            if not self.store.add_copy(found.fid, destination):
                transfer.delete(target)  # deleted while we copied: do not leave an orphan
            logger.debug("fid %d copied from %s to dev%d", found.fid, origin, destination)
            return True
        return False

    def trim(self, found: FileRow, holders: list[int], wanted: int, topology: Topology) -> None:
        """Remove copies beyond ``wanted``, keeping readable copies on distinct hosts."""
        ranked = sorted(holders, key=lambda devid: not topology.readable(devid))
        keep: list[int] = []
        hosts: set[int] = set()
        for devid in ranked:
            hostid = topology.devices[devid].hostid
            if len(keep) < wanted and hostid not in hosts:
                keep.append(devid)
                hosts.add(hostid)
        keep += [devid for devid in ranked if devid not in keep][: wanted - len(keep)]
        for devid in [devid for devid in holders if devid not in keep]:
            self.store.remove_copy(found.fid, devid)
            holders.remove(devid)
            url = topology.url(devid, found.fid)
            if url and not transfer.delete(url):
                logger.warning("fid %d: could not delete the extra copy at %s", found.fid, url)

"""DevCluster: a whole MogileFS on loopback, in-process.

One tracker (more with :meth:`DevCluster.add_tracker`), ``nodes`` storage
nodes with one device each (node ``i`` is host ``node<i>`` with device
``i``), the replication worker, and the domains and classes asked for, all
kept in ``data_dir``: the metadata in ``metadata.sqlite3``, the files below
``nodes/node<i>/dev<i>/``. Starting a cluster again over the same directory
keeps its files; the nodes' new ports are written to the metadata.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from .metadata import MetadataStore
from .replication import Replicator
from .storagenode import StorageNode
from .tracker import Tracker, TrackerServer

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.sqlite3"
DEFAULT_DOMAINS = {"testdomain": {"avatar": 2, "thumb": 1}}


class DevCluster:
    """A dev MogileFS: trackers, storage nodes and replication, on loopback.

    ``domains`` maps domain names to ``{class: mindevcount}``; the classes
    are created (or their mindevcount updated) at start. Ports are chosen
    by the OS unless ``tracker_port`` is given; stopped parts keep their
    ports and start again on them. ``stray_rename_reply`` reproduces
    mogilefsd 2.73's lost reply after a ``rename`` onto a taken key
    (:class:`~.tracker.Tracker`); ``tracker_idle_timeout`` is how long a
    client connection may stay idle before the tracker closes it.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        nodes: int = 2,
        domains: dict[str, dict[str, int]] | None = None,
        host: str = "127.0.0.1",
        tracker_port: int = 0,
        replication_interval: float = 0.2,
        stray_rename_reply: bool = True,
        tracker_idle_timeout: float = 300.0,
    ) -> None:
        if nodes < 1:
            raise ValueError(f"a dev cluster needs at least one storage node, not nodes={nodes}")
        if replication_interval <= 0:
            raise ValueError(
                f"replication_interval must be positive seconds, not {replication_interval}"
            )
        self.data_dir = Path(data_dir)
        self.domains = {
            name: dict(classes)
            for name, classes in (DEFAULT_DOMAINS if domains is None else domains).items()
        }
        for domain, classes in self.domains.items():
            for name, mindevcount in classes.items():
                if mindevcount < 1:
                    raise ValueError(
                        f"class {domain}:{name} needs a mindevcount of at least 1, not {mindevcount}"
                    )
        self.host = host
        self.tracker_port = tracker_port
        self.replication_interval = replication_interval
        self.stray_rename_reply = stray_rename_reply
        self.tracker_idle_timeout = tracker_idle_timeout
        self.nodes = [
            StorageNode(self.data_dir / "nodes" / f"node{index}", host)
            for index in range(1, nodes + 1)
        ]
        self.tracker_servers: list[TrackerServer] = []
        self.replicator: Replicator | None = None
        self._stores: list[MetadataStore] = []
        self._node_of_host: dict[int, StorageNode] = {}

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Start nodes, register them, create the domains, start the trackers.

        A no-op on a running cluster; a stopped cluster starts again with
        its parts on their previous ports.
        """
        if self.replicator is not None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        store = self._stores[0] if self._stores else self._open_store()
        for index, node in enumerate(self.nodes, 1):
            node.add_device(index)
            node.start()
            self._register(store, index, node)
        self._create_domains(store)
        if not self.tracker_servers:
            self.tracker_servers.append(
                TrackerServer(self._tracker(store), self.host, self.tracker_port)
            )
        for server in self.tracker_servers:
            server.start()
        self.replicator = Replicator(store, self.replication_interval).start()
        logger.info(
            "dev MogileFS up: trackers %s, nodes %s",
            self.trackers,
            [node.url for node in self.nodes],
        )
        return self

    def stop(self) -> None:
        """Stop everything: trackers, the replication worker, nodes; close the metadata."""
        for server in self.tracker_servers:
            server.stop()
        if self.replicator is not None:
            self.replicator.stop()
            self.replicator = None
        for node in self.nodes:
            node.stop()
        for store in self._stores:
            store.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- parts ---------------------------------------------------------------

    @property
    def trackers(self) -> list[str]:
        """``host:port`` of every tracker, stopped ones included."""
        return [server.address for server in self.tracker_servers]

    def add_tracker(self) -> TrackerServer:
        """Start another tracker over the same metadata (its own connections)."""
        server = TrackerServer(self._tracker(self._open_store()), self.host)
        self.tracker_servers.append(server)
        return server.start()

    def _open_store(self) -> MetadataStore:
        store = MetadataStore(self.data_dir / METADATA_FILE)
        self._stores.append(store)
        return store

    def _tracker(self, store: MetadataStore) -> Tracker:
        return Tracker(
            store,
            on_device_created=self._device_created,
            stray_rename_reply=self.stray_rename_reply,
            idle_timeout=self.tracker_idle_timeout,
        )

    def _device_created(self, devid: int, hostid: int) -> None:
        """A device was added with create_device: give its node the directory."""
        node = self._node_of_host.get(hostid)
        if node is not None:
            node.add_device(devid)

    # -- metadata setup ---------------------------------------------------------

    def _register(self, store: MetadataStore, index: int, node: StorageNode) -> None:
        """Record node ``index`` as host ``node<index>`` with device ``index``."""
        name = f"node{index}"
        host = store.host_by_name(name)
        hostid = host.hostid if host else store.create_host(name, self.host, "alive")
        store.update_host(hostid, {"hostip": self.host, "http_port": node.port})
        if store.device(index) is None:
            store.create_device(index, hostid, "alive")
        self._node_of_host[hostid] = node

    def _create_domains(self, store: MetadataStore) -> None:
        """Create the configured domains and classes; set their mindevcount."""
        for domain, classes in self.domains.items():
            dmid = store.domain_id(domain)
            if dmid is None:
                dmid = store.create_domain(domain)
            for name, mindevcount in classes.items():
                found = store.class_by_name(dmid, name)
                if found is None or found.implicit:
                    classid = store.create_class(dmid, name)
                else:
                    classid = found.classid
                store.update_class(dmid, classid, mindevcount=mindevcount)

    def __repr__(self) -> str:
        return f"<DevCluster {self.data_dir} trackers={self.trackers} nodes={[node.url for node in self.nodes]}>"

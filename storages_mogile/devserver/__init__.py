"""An embedded dev MogileFS: tracker(s), storage nodes and replication in Python.

Like moto for S3 or Azurite for Azure, it lets tests and local development
run against the real MogileFS protocols (the tracker's line protocol over
TCP, the storage nodes' HTTP) without a Perl installation::

    from storages_mogile.devserver import DevCluster

    with DevCluster(tmp_path, domains={"testdomain": {"avatar": 2}}) as cluster:
        trackers = cluster.trackers          # ["127.0.0.1:PORT"]

Or from a shell: ``python -m storages_mogile.devserver --help``. See
docs/devserver.md for what it implements and where it deliberately differs
from mogilefsd 2.73.
"""

from __future__ import annotations

from .cluster import DevCluster
from .storagenode import StorageNode
from .tracker import Tracker, TrackerServer

__all__ = ["DevCluster", "StorageNode", "Tracker", "TrackerServer"]

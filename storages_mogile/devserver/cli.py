"""Command line: run a dev MogileFS until interrupted.

    python -m storages_mogile.devserver --listen 127.0.0.1:7001 --data-dir DIR \\
        --nodes 2 --domain testdomain --class testdomain:avatar:2

prints one line per listening address (``tracker HOST:PORT``,
``node<N> URL dev<ID>``), then ``ready``, and serves until SIGINT or
SIGTERM, then stops cleanly and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from ..digits import parse_digits
from .cluster import DevCluster

READY = "ready"


def listen_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (port 0 = any free port) for ``--listen``."""
    host, _, port = text.rpartition(":")
    number = parse_digits(port)
    if not host or number is None or number > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT such as 127.0.0.1:7001, got {text!r}")
    return host, number


def class_spec(text: str) -> tuple[str, str, int]:
    """``DOMAIN:CLASS:MINDEVCOUNT`` for ``--class``."""
    parts = text.rsplit(":", 2)
    count = parse_digits(parts[-1])
    if len(parts) != 3 or not all(parts[:2]) or count is None or count < 1:
        raise argparse.ArgumentTypeError(
            f"expected DOMAIN:CLASS:MINDEVCOUNT with a mindevcount of at least 1, such as testdomain:avatar:2, got {text!r}"
        )
    return parts[0], parts[1], count


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m storages_mogile.devserver",
        description="Run a dev MogileFS (tracker, storage nodes, replication) on this machine.",
    )
    parser.add_argument(
        "--listen",
        type=listen_address,
        default=("127.0.0.1", 7001),
        metavar="HOST:PORT",
        help="tracker address; the storage nodes listen on the same host (default 127.0.0.1:7001)",
    )
    parser.add_argument(
        "--data-dir",
        required=True,
        help="directory for the metadata and the stored files (kept between runs)",
    )
    parser.add_argument(
        "--nodes", type=int, default=2, help="number of storage nodes, one device each (default 2)"
    )
    parser.add_argument(
        "--domain", action="append", default=[], help="create this domain (repeatable)"
    )
    parser.add_argument(
        "--class",
        dest="classes",
        action="append",
        type=class_spec,
        default=[],
        metavar="DOMAIN:CLASS:MINDEVCOUNT",
        help="create this class, and its domain (repeatable)",
    )
    parser.add_argument(
        "--replication-interval",
        type=float,
        default=0.2,
        metavar="SECONDS",
        help="how often the replication worker looks for work (default 0.2)",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    options = parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(options.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    domains: dict[str, dict[str, int]] = {name: {} for name in options.domain}
    for domain, name, mindevcount in options.classes:
        domains.setdefault(domain, {})[name] = mindevcount
    host, port = options.listen
    try:
        cluster = DevCluster(
            options.data_dir,
            nodes=options.nodes,
            domains=domains,
            host=host,
            tracker_port=port,
            replication_interval=options.replication_interval,
        )
    except ValueError as exc:
        parser().error(str(exc))

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        cluster.start()
    except OSError as exc:
        cluster.stop()
        print(f"cannot start the dev MogileFS: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"tracker {cluster.trackers[0]}")
        for index, node in enumerate(cluster.nodes, 1):
            print(f"node{index} {node.url} " + " ".join(f"dev{devid}" for devid in node.devids))
        print(READY, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        cluster.stop()
    return 0

"""The lab's command line: start, stop, and the watchdog a test run leaves behind.

    python -m tests.reallab start DIR [--port-base N] [--db sqlite|mariadb|postgres]
    python -m tests.reallab stop DIR [--purge]

``start`` prints the settings for a test suite (also written to DIR/env);
its progress goes to stderr.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

from tests.reallab import processes
from tests.reallab.lab import DATABASES, Lab, LabError, Options


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM ends a start like Ctrl-C does: what it started is stopped again."""
    raise KeyboardInterrupt


def start(arguments: argparse.Namespace) -> None:
    lab = Lab(
        Path(arguments.dir),
        db=arguments.db,
        port_base=arguments.port_base,
        options=Options.from_environment(),
    )
    settings = lab.start()
    sys.stdout.write("".join(f"{name}={value}\n" for name, value in settings.items()))


def stop(arguments: argparse.Namespace) -> None:
    Lab(Path(arguments.dir)).stop(purge=arguments.purge)


def watch(arguments: argparse.Namespace) -> None:
    """Wait for the owner to end (a start time tells a pid from its reuse), then
    stop the lab and remove its files."""
    directory = Path(arguments.dir)
    while processes.start_time(arguments.owner) == arguments.owner_start:
        if not directory.is_dir():
            return
        time.sleep(1)
    logging.getLogger(__name__).info("owner %d has gone: stopping the lab", arguments.owner)
    Lab(directory).stop(purge=True)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m tests.reallab", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = main.add_subparsers(dest="command", required=True)
    starting = commands.add_parser("start", help="start a lab in DIR (idempotent)")
    starting.add_argument("dir")
    starting.add_argument(
        "--port-base", type=int, help="first of 7 ports (default: the DIR's, else a free one)"
    )
    starting.add_argument(
        "--db", choices=DATABASES, help="the trackers' database (default: the DIR's, else sqlite)"
    )
    starting.set_defaults(run=start)
    stopping = commands.add_parser("stop", help="stop the lab in DIR")
    stopping.add_argument("dir")
    stopping.add_argument(
        "--purge", action="store_true", help="also remove everything start made in DIR"
    )
    stopping.set_defaults(run=stop)
    watching = commands.add_parser("watch", help=argparse.SUPPRESS)
    watching.add_argument("dir")
    watching.add_argument("--owner", type=int, required=True)
    watching.add_argument("--owner-start", required=True)
    watching.set_defaults(run=watch)
    return main


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="[reallab %(asctime)s] %(message)s", datefmt="%H:%M:%S"
    )
    arguments = parser().parse_args()
    signal.signal(signal.SIGTERM, interrupt)
    try:
        arguments.run(arguments)
    except LabError as exc:
        logging.getLogger(__name__).error("%s", exc)
        return 1
    except KeyboardInterrupt:
        logging.getLogger(__name__).error("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

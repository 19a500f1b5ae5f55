"""pytest plugin: ``--real-mogilefs`` runs the suites against a real MogileFS.

With the option, the session starts the lab of tests/reallab (a real
mogilefsd 2.73 with two trackers and two mogstored nodes on loopback, from
the MogileFS sources vendored there) in a new temporary directory, on free
ports it finds itself (or from ``$MOGILEFS_LAB_PORT_BASE``), exports
``MOGILEFS_TEST_TRACKERS`` / ``MOGILEFS_TEST_DOMAIN`` for the fixtures in
tests/conftest.py, and stops it and removes its directory at the end: also
after Ctrl-C or SIGTERM, and, through the lab's watchdog, after the run was
killed. ``--real-mogilefs-db`` picks the trackers' database. A run that
already names a MogileFS in those variables uses that one instead.

A lab that cannot start fails the run under ``CI=true``; elsewhere every
test is skipped with the reason.
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest

from tests.conftest import TRACKERS_ENV
from tests.reallab import DATABASES, Lab, LabError, Options

PORT_BASE_ENV = "MOGILEFS_LAB_PORT_BASE"

_unavailable = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--real-mogilefs",
        action="store_true",
        help="start a real MogileFS (tests/reallab) for the run and test against it",
    )
    parser.addoption(
        "--real-mogilefs-db",
        choices=DATABASES,
        default="sqlite",
        help="the database of the real MogileFS's trackers (default: sqlite)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("--real-mogilefs") or os.environ.get(TRACKERS_ENV):
        return  # not asked for, or a MogileFS is named already
    try:
        lab = _new_lab(config.getoption("--real-mogilefs-db"))
        _terminate_as_interrupt()
        settings = _start(lab)
    except LabError as exc:
        if os.environ.get("CI") == "true":
            raise pytest.UsageError(f"the real MogileFS lab did not start: {exc}") from exc
        config.stash[_unavailable] = str(exc)
        return
    config.add_cleanup(lambda: lab.stop(purge=True))
    os.environ.update(settings)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = config.stash.get(_unavailable, None)
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"the real MogileFS lab did not start: {reason}")
    for item in items:
        item.add_marker(skip)


def _new_lab(db: str) -> Lab:
    base = os.environ.get(PORT_BASE_ENV, "").strip()
    if base and not base.isdigit():
        raise LabError(f"{PORT_BASE_ENV} must be a port number, not {base!r}")
    options = Options.from_environment()
    directory = Path(tempfile.mkdtemp(prefix="mogilefs-lab-"))
    try:
        return Lab(directory, db=db, port_base=int(base) if base else None, options=options)
    except LabError:
        directory.rmdir()
        raise


def _start(lab: Lab) -> dict[str, str]:
    """Start ``lab`` for this process; on any failure, leave nothing behind."""
    try:
        return lab.start(owner=os.getpid())
    except BaseException:
        lab.stop(purge=True)
        raise


def _terminate_as_interrupt() -> None:
    """SIGTERM ends the run like Ctrl-C, so that pytest's cleanup stops the lab."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)

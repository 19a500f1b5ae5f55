"""pytest plugin: ``--real-mogilefs`` runs the suites against the real MogileFS lab.

The lab (``shared/mogilefs-lab`` beside the checkout, or the folder
``$MOGILEFS_LAB`` names) is a real mogilefsd 2.73 with two trackers and two
mogstored nodes on loopback. With the option, the session starts one in a
directory of its own (port base ``$MOGILEFS_LAB_PORT_BASE``, default
27001), exports ``MOGILEFS_TEST_TRACKERS`` / ``MOGILEFS_TEST_DOMAIN`` for the
fixtures in tests/conftest.py, and stops and removes it at the end. A run
that already names a MogileFS in those variables uses that one instead.

A lab that cannot start fails the run under ``CI=true``; elsewhere every
test is skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import TRACKERS_ENV

DEFAULT_PORT_BASE = "27001"
START_TIMEOUT = 600  # seconds; a cold start with apt-get takes about one minute

_unavailable = pytest.StashKey[str]()


def lab_scripts() -> Path:
    """The lab's folder: $MOGILEFS_LAB, else shared/mogilefs-lab beside the checkout."""
    configured = os.environ.get("MOGILEFS_LAB")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "shared" / "mogilefs-lab"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--real-mogilefs",
        action="store_true",
        help="start the real MogileFS lab (shared/mogilefs-lab) and run against it",
    )


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("--real-mogilefs") or os.environ.get(TRACKERS_ENV):
        return  # not asked for, or a MogileFS is named already (xdist workers inherit it)
    try:
        lab_dir = _start(lab_scripts())
    except LabError as exc:
        if os.environ.get("CI") == "true":
            raise pytest.UsageError(f"the real MogileFS lab did not start: {exc}") from exc
        config.stash[_unavailable] = str(exc)
        return
    config.add_cleanup(lambda: _stop(lab_scripts(), lab_dir))
    for line in (lab_dir / "env").read_text().splitlines():
        name, _, value = line.partition("=")
        os.environ[name.strip()] = value.strip()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = config.stash.get(_unavailable, None)
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"the real MogileFS lab did not start: {reason}")
    for item in items:
        item.add_marker(skip)


class LabError(Exception):
    """The lab could not be started."""


def _start(scripts: Path) -> Path:
    """Start a lab in a new directory; the directory, holding ``env``."""
    start = scripts / "start"
    if not start.is_file():
        raise LabError(f"{start} does not exist: set MOGILEFS_LAB to the mogilefs-lab folder")
    lab_dir = Path(tempfile.mkdtemp(prefix="mogilefs-lab-"))
    port_base = os.environ.get("MOGILEFS_LAB_PORT_BASE", DEFAULT_PORT_BASE)
    try:
        result = subprocess.run(
            ["bash", str(start), str(lab_dir), "--port-base", port_base],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        _stop(scripts, lab_dir)
        raise LabError(f"{start} did not finish within {START_TIMEOUT} s") from exc
    if result.returncode != 0:
        _stop(scripts, lab_dir)
        tail = "\n".join(result.stderr.splitlines()[-15:])
        raise LabError(f"{start} exited {result.returncode}:\n{tail}")
    return lab_dir


def _stop(scripts: Path, lab_dir: Path) -> None:
    subprocess.run(
        ["bash", str(scripts / "stop"), str(lab_dir), "--purge"],
        capture_output=True,
        timeout=120,
        check=False,
    )

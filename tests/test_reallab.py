"""The real-MogileFS lab of tests/reallab: labs side by side, and nothing left behind.

Each test starts real mogilefsd/mogstored processes (about 12 s a lab).
Leftovers are looked for the hard way: every process whose working
directory is in the lab's directory, and every pid its pid files named.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from storages_mogile.client import Client
from tests.reallab import Lab, LabError
from tests.reallab.processes import alive, port_free

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(600)  # real daemons, on a loaded CI machine


def processes_in(directory: Path) -> list[int]:
    """Pids whose working directory is ``directory`` or below it."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if cwd == directory or directory in cwd.parents:
            found.append(int(entry.name))
    return found


def recorded_pids(directory: Path) -> set[int]:
    pids = set()
    for pid_file in (directory / "run").glob("*.pid"):
        text = pid_file.read_text().strip()
        if text.isdigit():
            pids.add(int(text))
    return pids


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def store_and_read(settings: dict[str, str], key: str, body: bytes) -> bytes:
    trackers = settings["MOGILEFS_TEST_TRACKERS"].split(",")
    with Client(settings["MOGILEFS_TEST_DOMAIN"], trackers) as client:
        client.store_file(key, io.BytesIO(body), cls="thumb")
        try:
            return client.get_file_data(key)
        finally:
            client.delete(key)


def test_two_labs_started_at_once_get_their_own_ports_and_both_work(tmp_path: Path) -> None:
    labs = [Lab(tmp_path / f"lab{number}") for number in (1, 2)]
    try:
        with ThreadPoolExecutor(2) as pool:
            settings = list(pool.map(lambda lab: lab.start(), labs))
        bases = {lab.ports.base for lab in labs}
        assert len(bases) == 2, settings
        low, high = sorted(bases)
        assert high - low >= 7, "the two labs' port ranges overlap"
        for number, lab_settings in enumerate(settings):
            body = f"lab {number}".encode()
            assert store_and_read(lab_settings, f"reallab/two/{number}", body) == body
    finally:
        for lab in labs:
            lab.stop(purge=True)
    for lab in labs:
        assert not lab.directory.exists()
        assert not processes_in(lab.directory)
        assert port_free("127.0.0.1", lab.ports.base)


def test_a_taken_port_base_is_refused_before_anything_starts(tmp_path: Path) -> None:
    first = Lab(tmp_path / "first")
    first.start()
    try:
        second = Lab(tmp_path / "second", port_base=first.ports.base)
        with pytest.raises(LabError, match="already in use by processes not started from"):
            second.start()
        assert not processes_in(second.directory)
    finally:
        first.stop(purge=True)
    assert not processes_in(first.directory)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_start_stops_what_it_started(tmp_path: Path, sig: signal.Signals) -> None:
    directory = tmp_path / "lab"
    command = [sys.executable, "-m", "tests.reallab", "start", str(directory)]
    starting = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # interrupt it once the daemons run (the trackers are the last to start)
    pids: set[int] = set()

    def trackers_launched() -> bool:
        pids.update(recorded_pids(directory))
        return (directory / "run" / "tracker2.pid").exists()

    assert wait_until(trackers_launched, 120), starting.communicate()
    starting.send_signal(sig)
    _, errors = starting.communicate(timeout=120)
    assert starting.returncode == 130, errors
    assert "interrupted" in errors
    assert len(pids) >= 5
    assert not [pid for pid in pids if alive(pid)]
    assert not processes_in(directory)


def test_the_watchdog_removes_the_lab_of_a_killed_owner(tmp_path: Path) -> None:
    directory = tmp_path / "lab"
    owner_program = (
        "import sys, time; from pathlib import Path; from tests.reallab import Lab\n"
        "Lab(Path(sys.argv[1])).start(owner=__import__('os').getpid())\n"
        "print('up', flush=True); time.sleep(600)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", owner_program, str(directory)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert owner.stdout is not None and owner.stdout.readline() == "up\n"
        pids = recorded_pids(directory)
        assert len(pids) == 6  # five daemons and the watchdog
        owner.kill()  # no cleanup of its own can run
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()  # type: ignore[union-attr]
    assert wait_until(lambda: not directory.exists(), 60), sorted(directory.rglob("*"))
    # the watchdog itself exits right after removing the directory
    assert wait_until(lambda: not [pid for pid in pids if alive(pid)], 10)
    assert not processes_in(directory)


def test_a_pytest_run_terminated_while_its_lab_starts_leaves_nothing(tmp_path: Path) -> None:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("MOGILEFS_TEST_TRACKERS", "MOGILEFS_TEST_DOMAIN")
    }
    environment["TMPDIR"] = str(tmp_path)  # where the run makes its lab's directory
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--real-mogilefs", "-p", "no:cacheprovider", "-q",
         "tests/client/test_protocol_properties.py"],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    pids: set[int] = set()

    def daemons_launched() -> bool:
        for lab_dir in tmp_path.glob("mogilefs-lab-*"):
            pids.update(recorded_pids(lab_dir))
        return len(pids) >= 4

    assert wait_until(daemons_launched, 120), run.communicate()
    run.send_signal(signal.SIGTERM)
    output, _ = run.communicate(timeout=120)
    assert run.returncode != 0, output
    assert not list(tmp_path.glob("mogilefs-lab-*")), output
    assert not [pid for pid in pids if alive(pid)]
    assert not processes_in(tmp_path)

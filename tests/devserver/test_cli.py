"""``python -m storages_mogile.devserver`` as a subprocess."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import Line, http_request


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "storages_mogile.devserver", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ready_lines(process: subprocess.Popen[str]) -> list[str]:
    """The lines printed up to and including ``ready``."""
    lines = []
    while (line := process.stdout.readline()) and line.strip() != "ready":
        lines.append(line.strip())
    assert line.strip() == "ready", f"no ready line; stderr: {process.stderr.read()}"
    return lines


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serves_until_signalled(tmp_path: Path, signum: signal.Signals) -> None:
    process = start(
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        str(tmp_path),
        "--nodes",
        "2",
        "--domain",
        "testdomain",
        "--class",
        "testdomain:avatar:2",
        "--class",
        "testdomain:thumb:1",
    )
    try:
        lines = ready_lines(process)
        tracker = lines[0].removeprefix("tracker ")
        assert [line.split()[0] for line in lines] == ["tracker", "node1", "node2"]
        assert lines[1].endswith(" dev1") and lines[2].endswith(" dev2")
        with Line(tracker) as line:
            line.store("cli/a", b"from the cli", "thumb")
            (path,) = line.paths("cli/a")
            assert http_request("GET", path)[2] == b"from the cli"
            classes = line.ok("get_domains")
            assert {classes[f"domain1class{n}name"] for n in (1, 2, 3)} == {
                "avatar",
                "thumb",
                "default",
            }
        process.send_signal(signum)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--class", "testdomain:avatar"], "expected DOMAIN:CLASS:MINDEVCOUNT"),
        (["--class", "testdomain:avatar:0"], "mindevcount of at least 1"),
        (["--listen", "7001"], "expected HOST:PORT"),
        (["--nodes", "0"], "at least one storage node"),
    ],
)
def test_bad_arguments_are_explained(tmp_path: Path, args: list[str], message: str) -> None:
    process = start("--data-dir", str(tmp_path), "--listen", "127.0.0.1:0", *args)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert message in stderr


def test_a_busy_port_is_named(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        process = start("--data-dir", str(tmp_path), "--listen", address)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert f"the tracker cannot listen on {address}: Address already in use" in stderr

"""The example site's launcher (example/run_demo.py, behind scripts/demo)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_smoke_run_stores_and_serves_an_avatar(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "example" / "run_demo.py"), "--smoke"],
        env={"EXAMPLE_VAR_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dev MogileFS tracker 127.0.0.1:" in result.stderr  # the startup lines
    assert "smoke test passed" in result.stdout


def test_a_taken_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, str(ROOT / "example" / "run_demo.py"), "--port", str(port)],
            env={"EXAMPLE_VAR_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is taken" in result.stderr
    assert f"--port {port + 1}" in result.stderr
    assert not (tmp_path / "mogile").exists()  # nothing was started

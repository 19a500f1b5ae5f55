"""The --real-mogilefs plugin (tests/lab.py) when the lab cannot start: fail in CI, skip
elsewhere, and leave nothing behind either way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
A_TEST = "tests/client/test_protocol_properties.py"


def run_pytest(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("CI", "MOGILEFS_TEST_TRACKERS", "MOGILEFS_TEST_DOMAIN")
    }
    # more free space than any disk has: the lab's own check refuses to start
    environment.update(MOGILEFS_LAB_MIN_FREE_SPACE="999999999", TMPDIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--real-mogilefs", "-q", "-p", "no:cacheprovider", A_TEST],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_lab_that_cannot_start_fails_the_run_in_ci(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, CI="true")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "the real MogileFS lab did not start" in result.stderr
    assert "set MOGILEFS_LAB_MIN_FREE_SPACE" in result.stderr
    assert not list(tmp_path.glob("mogilefs-lab-*")), "the lab's directory was left behind"


def test_a_lab_that_cannot_start_skips_every_test_elsewhere(tmp_path: Path) -> None:
    result = run_pytest(tmp_path)
    assert result.returncode == pytest.ExitCode.OK, result.stdout + result.stderr
    assert " passed" not in result.stdout and " skipped" in result.stdout
    assert "MOGILEFS_LAB_MIN_FREE_SPACE" in result.stdout
    assert not list(tmp_path.glob("mogilefs-lab-*")), "the lab's directory was left behind"

"""A clone of the repository is all its tests need.

The committed HEAD is cloned into an empty directory (nothing beside it:
no recording, no MogileFS sources of the machine's), and from there the
replay of the mogilefsd recording and a test on a real MogileFS, which the
clone's own lab starts, must pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# a test that needs the real MogileFS: it stores through both trackers of the lab
REAL_TEST = "tests/test_checks.py"


def git(*arguments: str, cwd: Path) -> str:
    result = subprocess.run(
        ["git", *arguments], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"git {' '.join(arguments)}: {result.stderr}"
    return result.stdout.strip()


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """The committed HEAD of this checkout, cloned into an otherwise empty directory."""
    inside = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"], cwd=ROOT, capture_output=True, check=False
    )
    if shutil.which("git") is None or inside.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{ROOT} is not a git checkout: CI must run from one")
        pytest.skip(f"{ROOT} is not a git checkout")
    head = git("rev-parse", "HEAD", cwd=ROOT)
    empty = tmp_path / "empty"
    empty.mkdir()
    git("clone", "--quiet", "--no-checkout", str(ROOT), "clone", cwd=empty)
    destination = empty / "clone"
    git("checkout", "--quiet", head, cwd=destination)
    assert [path.name for path in empty.iterdir()] == ["clone"]
    return destination


@pytest.mark.timeout(900)  # a lab's start and the replay, on a loaded CI machine
def test_a_clone_alone_runs_the_replay_and_a_real_mogilefs_test(clone: Path) -> None:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("MOGILEFS_") and name != "PYTHONPATH"
    }
    environment["CI"] = "true"  # a lab that cannot start is an error, not a skip
    which = subprocess.run(
        [sys.executable, "-c", "import storages_mogile, tests; print(storages_mogile.__file__, tests.__file__)"],
        cwd=clone, env=environment, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert which.stdout.split() == [
        str(clone / "storages_mogile" / "__init__.py"),
        str(clone / "tests" / "__init__.py"),
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", "--real-mogilefs",
         "tests/devserver/test_replay.py", REAL_TEST],
        cwd=clone, env=environment, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = output.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, output
    # the real-MogileFS tests ran on the clone's lab (only the dev-only one skips)
    assert "needs a dev cluster of its own" in output
    assert "the real MogileFS lab did not start" not in output

"""The example site's launcher (example/run_demo.py, behind scripts/demo)."""

from __future__ import annotations

import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from storages_mogile.client import Client
from storages_mogile.devserver import DevCluster

ROOT = Path(__file__).resolve().parents[1]


def smoke(var_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "example" / "run_demo.py"), "--smoke"],
        env={"EXAMPLE_VAR_DIR": str(var_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def stored_keys(var_dir: Path) -> list[str]:
    """The keys in the demo's MogileFS (its data persists in var_dir/mogile)."""
    with (
        DevCluster(var_dir / "mogile", nodes=2, domains={}) as cluster,
        Client("media", cluster.trackers) as client,
    ):
        return list(client.iter_keys(""))


def test_the_smoke_run_stores_and_serves_an_avatar(tmp_path: Path) -> None:
    result = smoke(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dev MogileFS tracker 127.0.0.1:" in result.stderr  # the startup lines
    assert "smoke test passed" in result.stdout
    thumbnail = re.search(r"thumbnail (\S+),", result.stdout)
    assert thumbnail and thumbnail.group(1).endswith(".png")
    assert not thumbnail.group(1).endswith(".png.png"), thumbnail.group(1)


def test_the_smoke_run_works_whatever_the_database_holds_and_leaves_it_so(
    tmp_path: Path,
) -> None:
    assert smoke(tmp_path).returncode == 0  # creates the database
    database = sqlite3.connect(tmp_path / "example.sqlite3")
    with database:  # avatars of the user's, named like the smoke run's
        for name in ("smoke", "smoke", "Smoke"):
            database.execute(
                "INSERT INTO avatars_avatar (name, image, thumb, uploaded) "
                "VALUES (?, 'avatars/kept.png', 'thumbs/kept.png', '2026-01-01 00:00:00')",
                (name,),
            )
    rows = database.execute("SELECT * FROM avatars_avatar ORDER BY id").fetchall()
    for _ in range(2):
        result = smoke(tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "smoke test passed" in result.stdout
    assert database.execute("SELECT * FROM avatars_avatar ORDER BY id").fetchall() == rows
    database.close()
    assert stored_keys(tmp_path) == []


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

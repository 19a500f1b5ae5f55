"""Where a file lives on a storage node, as MogileFS lays it out.

A fid is zero-padded to ten digits and split into directories:
fid 1 on device 1 is ``/dev1/0/000/000/0000000001.fid``.
"""

from __future__ import annotations

import re

_FID_PATH = re.compile(r"/dev(\d+)/\d/\d{3}/\d{3}/(\d{10,})\.fid")


def fid_path(devid: int, fid: int) -> str:
    """The URL path of ``fid`` on device ``devid``."""
    padded = f"{fid:010d}"
    return f"/dev{devid}/{padded[0]}/{padded[1:4]}/{padded[4:7]}/{padded}.fid"


def fid_url(hostip: str, port: int, devid: int, fid: int) -> str:
    """The full storage URL of ``fid`` on device ``devid`` of a host."""
    return f"http://{hostip}:{port}{fid_path(devid, fid)}"


def parse_fid_path(path: str) -> tuple[int, int] | None:
    """``(devid, fid)`` of a fid path, or ``None`` if it is not one."""
    match = _FID_PATH.fullmatch(path)
    return (int(match.group(1)), int(match.group(2))) if match else None

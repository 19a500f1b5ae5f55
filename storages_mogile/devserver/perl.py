"""How mogilefsd (Perl) reads request arguments, reproduced in Python.

The tracker's handlers test arguments for truth (``$args->{fid} or ...``)
and use them as numbers (``$args->{limit} + 0``). Perl's rules for both
differ from Python's, and clients see the difference: ``fid=0`` means "no
fid", ``limit=abc`` means a limit of 0. These helpers keep those rules in one
place so the handlers read like the server they emulate.
"""

from __future__ import annotations

import re

_NUMBER = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")


def truthy(value: str | None) -> bool:
    """Perl truth of an argument: missing, ``""`` and ``"0"`` are false."""
    return value not in (None, "", "0")


def number(value: str | None) -> float:
    """Perl numification: the leading number of the text, else 0."""
    match = _NUMBER.match(value or "")
    return float(match.group(1)) if match else 0.0


def integer(value: str | None) -> int:
    """Perl ``int()`` of an argument: its leading number, truncated."""
    return int(number(value))

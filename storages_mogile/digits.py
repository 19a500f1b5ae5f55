"""Whole numbers read from text that others wrote: HTTP headers, keys, replies.

``str.isdigit()`` also accepts "\u00b2" and "\u2460", which ``int()`` refuses
(a ValueError where a "not a number" was meant), and ``int()`` accepts
" 1_000 " and "+5": neither alone says whether text is a plain decimal number.
"""

from __future__ import annotations


def parse_digits(text: str | None, *, max_digits: int | None = None) -> int | None:
    """The number ``text`` writes in ASCII digits only (at most ``max_digits``); else None."""
    if not text or not (text.isascii() and text.isdigit()):
        return None
    if max_digits is not None and len(text) > max_digits:
        return None
    try:
        return int(text)
    except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits())
        return None

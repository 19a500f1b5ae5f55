"""Code blocks of docs/serving.md, so that tests run the documented text itself."""

from __future__ import annotations

import re
from pathlib import Path

SERVING_DOC = Path(__file__).resolve().parents[2] / "docs" / "serving.md"


def doc_block(marker: str) -> str:
    """The fenced code block right after ``<!-- marker -->`` in docs/serving.md."""
    text = SERVING_DOC.read_text(encoding="utf-8")
    match = re.search(
        rf"<!-- {re.escape(marker)} -->\n```[a-z]*\n(.*?)^```", text, re.DOTALL | re.MULTILINE
    )
    if match is None:
        raise LookupError(f"docs/serving.md has no code block marked <!-- {marker} -->")
    return match.group(1)


def fill_in(text: str, replacements: dict[str, str]) -> str:
    """``text`` with each key, which must occur exactly once, replaced by its value."""
    for old, new in replacements.items():
        count = text.count(old)
        if count != 1:
            raise ValueError(
                f"expected {old!r} once in the documented text, found it {count} times"
            )
        text = text.replace(old, new)
    return text

"""The access hook example of docs/serving.md, executed from the document itself."""

from __future__ import annotations

from typing import Any

from tests.serving.docs import SERVING_DOC, doc_block

_example: dict[str, Any] = {}
# Running the documented text itself is the point: the docs cannot drift from what is tested.
_code = compile(doc_block("example: signed-access"), str(SERVING_DOC), "exec")
exec(_code, _example)  # noqa: S102

signed_url = _example["signed_url"]
can_read = _example["can_read"]

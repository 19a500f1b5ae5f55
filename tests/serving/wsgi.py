"""Django's WSGI handler under wsgiref, in a thread of the test process.

The test client calls the view directly; a real WSGI server also reads the
first chunk of a streamed body and turns an exception there into a 500,
which is what these tests must see. The server shares the test's settings
(and so its caches).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.core.handlers.wsgi import WSGIHandler


class QuietHandler(WSGIRequestHandler):
    """No access log on stderr."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def wsgiref_server() -> Iterator[str]:
    """A running wsgiref server of the project; its base URL."""
    server: WSGIServer = make_server("127.0.0.1", 0, WSGIHandler(), handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

"""A TCP relay: ``python relay.py LISTEN_IP:PORT TARGET_IP:PORT``.

The lab runs it as a daemon because a tracker reaches every storage
node's management port (the side channel) on one port number,
``mogstored_stream_port``: node2, whose management port differs, is
reached through this relay on its IP and that port. Each connection gets
a thread per direction; an end-of-stream in one direction is passed on as
a half-close, so a request/reply exchange behaves as if direct.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading

logger = logging.getLogger("relay")

CHUNK = 65536


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def pump(source: socket.socket, sink: socket.socket, done: threading.Barrier) -> None:
    """Copy ``source`` to ``sink`` until end of stream, then half-close ``sink``."""
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the other end went away: nothing left to relay in this direction
    finally:
        if done.wait() == 0:
            source.close()
            sink.close()


def serve(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=5)
    except OSError as exc:
        logger.warning("connect %s:%d: %s", *target, exc)
        client.close()
        return
    upstream.settimeout(None)
    done = threading.Barrier(2)
    threading.Thread(target=pump, args=(client, upstream, done), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client, done), daemon=True).start()


def main(listen: str, target: str) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s relay %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with socket.create_server(address(listen), backlog=128) as server:
        logger.info("%s -> %s running", listen, target)
        while True:
            client, _ = server.accept()
            serve(client, address(target))


if __name__ == "__main__":
    main(*sys.argv[1:3])

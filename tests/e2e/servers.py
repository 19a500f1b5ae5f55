"""Real servers for the end-to-end tests and benchmarks: uvicorn, gunicorn, wsgiref, Perlbal, nginx.

Each runs as a subprocess with its output in a log file, on a loopback port
the OS picked, and is stopped for sure (terminated, then killed). Perlbal
and nginx run with the configurations of docs/serving.md, of which only the
two addresses are replaced.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from tests.serving.docs import doc_block, fill_in

if TYPE_CHECKING:
    from typing_extensions import Self

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0


class ServerError(RuntimeError):
    """A server did not start; the message holds the end of its log."""


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_binary(name: str) -> str | None:
    """The path of an executable, also looked for in the sbin directories."""
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/sbin", "/usr/bin", "/sbin"):
        candidate = Path(directory) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


class Server:
    """A server subprocess listening on ``port``, its output in ``log``."""

    def __init__(
        self, name: str, args: list[str], port: int, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.args = args
        self.port = port
        self.log = log
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Start the process and wait until its port accepts connections."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=REPO,
                start_new_session=True,  # a terminal's Ctrl-C goes to pytest, which stops it
            )
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_listening(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"{self.name} did not listen on {self.port} within "
                        f"{START_TIMEOUT}s:\n{self.log_tail()}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the process (kill it if it lingers) and reap it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def site_env(trackers: list[str], domain: str) -> dict[str, str]:
    """The environment of the end-to-end Django site on this MogileFS."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.e2e.site.settings",
        "MOGILEFS_E2E_TRACKERS": ",".join(trackers),
        "MOGILEFS_E2E_DOMAIN": domain,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }


def django_server(
    workdir: Path,
    trackers: list[str],
    domain: str,
    entry: str = "asgi",
    name: str = "uvicorn",
    *,
    standard: bool = False,
) -> Server:
    """The end-to-end Django site under uvicorn (ASGI), not started.

    ``entry``: the module of tests/e2e/site with the ASGI application
    (``asgi_shared``: wrapped in SharedThreads). ``standard``: HTTP parsed
    by httptools on uvloop's event loop, as ``uvicorn[standard]`` runs
    (both must be installed); otherwise h11 on asyncio's own loop.
    """
    port = free_port()
    http, loop = ("httptools", "uvloop") if standard else ("h11", "asyncio")
    args = [
        sys.executable, "-m", "uvicorn", f"tests.e2e.site.{entry}:application",
        "--host", "127.0.0.1", "--port", str(port), "--http", http, "--loop", loop,
        "--lifespan", "off", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return Server(name, args, port, workdir / f"{name}.log", site_env(trackers, domain))


def gunicorn_server(workdir: Path, trackers: list[str], domain: str, threads: int = 16) -> Server:
    """The end-to-end Django site under gunicorn (WSGI), one worker of ``threads``; not started."""
    port = free_port()
    args = [
        sys.executable, "-m", "gunicorn", "tests.e2e.site.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", str(threads),
        "--log-level", "warning",
    ]  # fmt: skip
    return Server("gunicorn", args, port, workdir / "gunicorn.log", site_env(trackers, domain))


def wsgiref_server(workdir: Path, trackers: list[str], domain: str) -> Server:
    """The end-to-end site under wsgiref's single-threaded WSGI server; not started."""
    port = free_port()
    code = (
        "from wsgiref.simple_server import make_server, WSGIRequestHandler\n"
        "from tests.e2e.site.wsgi import application\n"
        "class Quiet(WSGIRequestHandler):\n"
        "    def log_message(self, *args): pass\n"
        f"make_server('127.0.0.1', {port}, application, handler_class=Quiet).serve_forever()\n"
    )
    args = [sys.executable, "-c", code]
    return Server("wsgiref", args, port, workdir / "wsgiref.log", site_env(trackers, domain))


def perlbal_server(
    binary: str, workdir: Path, django: Server, extra: tuple[str, ...] = ()
) -> Server:
    """Perlbal with the documented configuration, in front of ``django``; not started.

    ``extra`` lines (``SET name = value``) go into the service before it is enabled.
    """
    port = free_port()
    config = fill_in(
        doc_block("config: perlbal"),
        {"0.0.0.0:80": f"127.0.0.1:{port}", "127.0.0.1:8000": django.address},
    )
    if extra:
        config = fill_in(
            config, {"ENABLE web": "".join(f"  {line}\n" for line in extra) + "ENABLE web"}
        )
    path = workdir / "perlbal.conf"
    path.write_text(config)
    return Server("perlbal", [binary, f"--config={path}"], port, workdir / "perlbal.log")


def nginx_server(binary: str, workdir: Path, django: Server) -> Server:
    """nginx with the documented configuration, in front of ``django``; not started."""
    port = free_port()
    site = fill_in(
        doc_block("config: nginx"),
        {"listen 80;": f"listen 127.0.0.1:{port};", "127.0.0.1:8000": django.address},
    )
    return _nginx(binary, workdir / "nginx", site, port)


def nginx_relay(binary: str, workdir: Path, upstream: str) -> Server:
    """nginx passing every request on to ``upstream`` (``http://host:port``), streaming the
    answers as they come (the reference of a user-space relay); not started."""
    port = free_port()
    site = "\n".join(
        [
            "server {",
            f"    listen 127.0.0.1:{port};",
            "    location / {",
            f"        proxy_pass {upstream};",
            "        proxy_http_version 1.1;",
            '        proxy_set_header Connection "";',
            "        proxy_max_temp_file_size 0;",
            "    }",
            "}",
        ]
    )
    return _nginx(binary, workdir / "nginx-relay", site, port)


def _nginx(binary: str, prefix: Path, site: str, port: int) -> Server:
    """nginx serving ``site`` (an ``http`` block's servers) on ``port``; not started.

    The site goes into the ``http`` block of a minimal main configuration
    that keeps nginx in the foreground as one process and puts its pid,
    logs and temporary files under ``prefix``.
    """
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    temp = {
        kind: prefix / f"{kind}_temp"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    }
    main = "\n".join(
        [
            "daemon off;",
            "master_process off;",
            f"pid {prefix / 'nginx.pid'};",
            "error_log stderr warn;",
            "events { worker_connections 256; }",
            "http {",
            "    access_log off;",
            *(f"    {kind}_temp_path {path};" for kind, path in temp.items()),
            site,
            "}",
            "",
        ]
    )
    config = prefix / "nginx.conf"
    config.write_text(main)
    args = [binary, "-p", str(prefix), "-c", str(config), "-e", "stderr"]
    return Server("nginx", args, port, prefix.parent / f"{prefix.name}.log")

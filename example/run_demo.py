"""Run the example site on the embedded dev MogileFS.

Starts a dev MogileFS (one tracker, two storage nodes, domain ``media`` with
classes ``avatar`` (2 copies) and ``thumb`` (1 copy)) under ``var/demo``,
migrates the site's database and serves it on http://127.0.0.1:8000/.
``--smoke`` instead uploads an avatar through the site, fetches it back
through the MogileFS view, deletes it, and exits (non-zero on any mismatch).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import socket
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_site.settings")

logger = logging.getLogger("run_demo")


def smoke() -> None:
    """One upload, fetch and delete through the site, checked byte for byte.

    The avatar gets a name of its own, so whatever the demo's database
    holds (avatars of the user's, leftovers of an earlier run) is left alone,
    and it is removed even when a step fails.
    """
    from avatars.models import Avatar
    from django.test import Client
    from PIL import Image

    name = f"smoke-{uuid.uuid4().hex[:12]}"
    buffer = io.BytesIO()
    Image.new("RGB", (120, 80), "teal").save(buffer, "PNG")
    upload = buffer.getvalue()
    buffer.name = "smoke.png"
    buffer.seek(0)
    browser = Client()
    try:
        response = browser.post("/", {"name": name, "image": buffer})
        if response.status_code != 302:
            raise SystemExit(f"upload failed: HTTP {response.status_code}")
        avatar = Avatar.objects.get(name=name)
        served = browser.get(avatar.image.url)
        body = b"".join(served.streaming_content) if served.streaming else served.content
        if served.status_code != 200 or body != upload:
            raise SystemExit(f"{avatar.image.url}: HTTP {served.status_code}, {len(body)} bytes")
        info = avatar.image.storage.client.file_info(avatar.image.name)
        print(
            f"stored {avatar.image.name} ({len(upload)} bytes, class {info.cls}), "
            f"thumbnail {avatar.thumb.name}, served back byte for byte from {avatar.image.url}"
        )
        browser.post(f"/avatars/{avatar.pk}/delete/")
        if Avatar.objects.filter(pk=avatar.pk).exists():
            raise SystemExit("delete left the avatar in the database")
        if avatar.image.storage.exists(avatar.image.name):
            raise SystemExit("delete left the file in MogileFS")
    finally:
        remove_avatars(name)
    print("smoke test passed")


def remove_avatars(name: str) -> None:
    """Delete the avatars called ``name`` and their files."""
    from avatars.models import Avatar

    for avatar in Avatar.objects.filter(name=name):
        avatar.image.delete(save=False)
        avatar.thumb.delete(save=False)
        avatar.delete()


def port_taken(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:``port``."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--smoke", action="store_true", help="round trip once and exit")
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not options.smoke and port_taken(options.port):
        raise SystemExit(
            f"127.0.0.1:{options.port} is taken by another program: stop it, or run "
            f"scripts/demo --port {options.port + 1}"
        )

    import django
    from django.core.management import call_command

    from storages_mogile.devserver import DevCluster

    var_dir = Path(os.environ.get("EXAMPLE_VAR_DIR", HERE.parent / "var" / "demo"))
    var_dir.mkdir(parents=True, exist_ok=True)
    # The domain and its classes are the site's to make (MOGILEFS_CLASSES), as on a real cluster.
    with DevCluster(var_dir / "mogile", nodes=2, domains={}) as cluster:
        os.environ["MOGILEFS_TRACKERS"] = ",".join(cluster.trackers)
        os.environ["MOGILEFS_DOMAIN"] = "media"
        django.setup()
        logger.info(
            "dev MogileFS tracker %s, storage nodes %s",
            cluster.trackers[0],
            " ".join(node.url for node in cluster.nodes),
        )
        call_command("mogilefs_setup")
        call_command("check", "--deploy", "--tag", "mogilefs")
        call_command("migrate", verbosity=0)
        if options.smoke:
            smoke()
            return
        logger.info("example site on http://127.0.0.1:%d/ (Ctrl-C stops it)", options.port)
        call_command("runserver", f"127.0.0.1:{options.port}", use_reloader=False)


if __name__ == "__main__":
    main()

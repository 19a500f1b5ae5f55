"""The Django site bench/soak.py runs under gunicorn: its settings and its URLconf.

``POST /upload/<name>`` saves the request body through MogileFSStorage and
answers the name it was stored under; ``GET /media/<name>`` is the serving
view in stream mode. The path cache is a FileBasedCache in
``SOAK_CACHE_DIR``, shared by every gunicorn worker. The MogileFS comes from
``SOAK_TRACKERS`` (comma-separated), ``SOAK_DOMAIN`` and ``SOAK_CLASS``.
Every storage option not set here keeps its default, so the soak measures
what a project gets without tuning.
"""

import os

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.http import require_POST

from storages_mogile.serving.urls import serve_patterns

SECRET_KEY = "storages-mogile-soak"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
USE_TZ = True
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
ROOT_URLCONF = __name__
DATABASES: dict[str, dict[str, str]] = {}

STORAGES = {
    "default": {
        "BACKEND": "storages_mogile.backends.mogile.MogileFSStorage",
        "OPTIONS": {
            "domain": os.environ["SOAK_DOMAIN"],
            "trackers": os.environ["SOAK_TRACKERS"],
            "mogile_class": os.environ["SOAK_CLASS"],
            "path_cache": "paths",
        },
    },
}
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "paths": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": os.environ["SOAK_CACHE_DIR"],
        # Every file of the run stays cached: no culling halfway through a window.
        "OPTIONS": {"MAX_ENTRIES": 1_000_000},
    },
}
MOGILEFS_MEDIA_URL = "/media/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(process)d %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    # Lost tracker replies and how they were settled: the evidence behind a 500.
    "loggers": {"storages_mogile.client.core": {"level": "INFO"}},
}


@require_POST
def upload(request: HttpRequest, name: str) -> HttpResponse:
    """Save the body as ``name``; the answer is the name the storage chose."""
    saved = default_storage.save(name, ContentFile(request.body))
    return HttpResponse(saved, content_type="text/plain; charset=utf-8")


urlpatterns = [
    path("upload/<path:name>", upload),
    *serve_patterns(prefix="/media/", mode="stream"),
]

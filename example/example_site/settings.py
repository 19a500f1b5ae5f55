"""Settings of the example site: avatars and thumbnails kept in MogileFS.

The trackers come from the environment (``scripts/demo`` starts the embedded
dev MogileFS and sets them); against a real cluster, set
``MOGILEFS_TRACKERS=host1:7001,host2:7001`` and ``MOGILEFS_DOMAIN``.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("EXAMPLE_VAR_DIR", BASE_DIR.parent / "var" / "demo"))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-site-not-secret")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "storages_mogile",  # the system checks
    "avatars",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "example_site.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": VAR_DIR / "example.sqlite3"}
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
STATIC_URL = "/static/"

# MogileFS, configured once: every uploaded file goes to the "media" domain,
# and the avatars' fields (mogile_storage(klass=...)) read these OPTIONS.
STORAGES = {
    "default": {
        "BACKEND": "storages_mogile.backends.mogile.MogileFSStorage",
        "OPTIONS": {
            "domain": os.environ.get("MOGILEFS_DOMAIN", "media"),
            "trackers": os.environ.get("MOGILEFS_TRACKERS", "127.0.0.1:7001"),
        },
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MOGILEFS_MEDIA_URL = "/mogilefs/"
# No Perlbal or nginx in front of the demo: Django streams the files itself.
MOGILEFS_SERVE_MODE = os.environ.get("MOGILEFS_SERVE_MODE", "stream")
MOGILEFS_CLASSES = {"avatar": 2, "thumb": 1}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
MOGILEFS_PATH_CACHE = "default"
# The demo is one process, so a per-process path cache is fine here (a site
# with several workers needs a shared cache: see docs/operating.md).
SILENCED_SYSTEM_CHECKS = ["storages_mogile.W003"]

LOGGING = {
    "version": 1,
    # Keep the launcher's own logger (example/run_demo.py): its startup lines.
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "storages_mogile": {"handlers": ["console"], "level": "INFO", "propagate": False}
    },
}

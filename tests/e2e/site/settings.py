"""Settings of the Django site the end-to-end tests and benchmarks run under uvicorn.

The MogileFS trackers and domain come from the environment
(MOGILEFS_E2E_TRACKERS, comma-separated, and MOGILEFS_E2E_DOMAIN).
Its only middleware names the view that answered (``X-View``).
"""

import os

SECRET_KEY = "storages-mogile-e2e"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
INSTALLED_APPS: list[str] = []
# More middleware from MOGILEFS_E2E_MIDDLEWARE (comma-separated dotted paths), for benchmarks.
MIDDLEWARE = [
    "tests.e2e.site.middleware.view_name",
    *filter(None, os.environ.get("MOGILEFS_E2E_MIDDLEWARE", "").split(",")),
]
ROOT_URLCONF = "tests.e2e.site.urls"
DATABASES: dict[str, dict[str, str]] = {}

STORAGES = {
    "default": {
        "BACKEND": "storages_mogile.backends.mogile.MogileFSStorage",
        "OPTIONS": {
            "domain": os.environ["MOGILEFS_E2E_DOMAIN"],
            "trackers": os.environ["MOGILEFS_E2E_TRACKERS"],
            "path_cache": "paths",
        },
    },
    # Inside the default storage's key space on purpose (check E016 would
    # refuse the site): the default storage's routes must not serve their files.
    "signed": {  # every URL signed; checksums verified on streamed reads
        "BACKEND": "storages_mogile.backends.mogile.MogileFSStorage",
        "OPTIONS": {
            "domain": os.environ["MOGILEFS_E2E_DOMAIN"],
            # The same cluster spelled otherwise: its last tracker alone.
            "trackers": os.environ["MOGILEFS_E2E_TRACKERS"].split(",")[-1:],
            "key_prefix": "signed/",
            "base_url": "/signed/",
            "signed_urls": True,
            "verify_checksum": True,
        },
    },
    "private": {  # served at /private/ with the access hook of docs/serving.md
        "BACKEND": "storages_mogile.backends.mogile.MogileFSStorage",
        "OPTIONS": {
            "domain": os.environ["MOGILEFS_E2E_DOMAIN"],
            "trackers": os.environ["MOGILEFS_E2E_TRACKERS"],
            "key_prefix": "private/",
            "base_url": "/private/",
        },
    },
}
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "paths": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "paths"},
}
MOGILEFS_MEDIA_URL = "/media/"
MOGILEFS_SERVE_MODE = "perlbal"

LOGGING = {
    "version": 1,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}

"""Settings of a second process that a test runs against its MogileFS: the suite's, with
a database file (``SITE_DB``) and MogileFS (``SITE_TRACKERS``, ``SITE_DOMAIN``,
``SITE_KEY_PREFIX``) as the default storage."""

import os

from tests.settings import *

ROOT_URLCONF = "storages_mogile.urls"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["SITE_DB"],
        "OPTIONS": {"timeout": 60},
    }
}
STORAGES = {
    "default": {
        "BACKEND": "storages_mogile.backends.mogile.MogileFSStorage",
        "OPTIONS": {
            "domain": os.environ["SITE_DOMAIN"],
            "trackers": os.environ["SITE_TRACKERS"].split(","),
            "key_prefix": os.environ["SITE_KEY_PREFIX"],
        },
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

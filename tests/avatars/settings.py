"""Settings for running makemigrations/migrate on the avatars app in a subprocess.

The migrations package and database live wherever the test points
``AVATARS_WORKDIR``; trackers come from ``MOGILEFS_TEST_TRACKERS``.
"""

import os

_workdir = os.environ["AVATARS_WORKDIR"]

SECRET_KEY = "storages-mogile-avatars"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "tests.avatars"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(_workdir, "db.sqlite3"),
    }
}
MIGRATION_MODULES = {"avatars": "avatars_migrations"}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
MOGILEFS_DOMAIN = "testdomain"
MOGILEFS_TRACKERS = os.environ["MOGILEFS_TEST_TRACKERS"].split(",")

"""Django settings for the test suite."""

SECRET_KEY = "storages-mogile-tests"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "tests.testapp",
    "storages_mogile.testing",
    "storages_mogile",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
ROOT_URLCONF = "tests.urls"
MEDIA_URL = "/media/"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
MOGILEFS_DOMAIN = "testdomain"
MOGILEFS_TRACKERS = []

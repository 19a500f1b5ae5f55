"""How MogileFSStorage resolves its options, and what it refuses."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from importlib.metadata import entry_points

import django
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from storages_mogile import mogile_storage
from storages_mogile.backends.mogile import MogileFSStorage


def test_settings_override_built_in_defaults(settings):
    settings.MOGILEFS_FILE_OVERWRITE = True
    settings.MOGILEFS_TIMEOUT = 2.5
    storage = MogileFSStorage()
    assert storage.file_overwrite is True
    assert storage.timeout == 2.5
    assert storage.noverify is True  # untouched default


def test_options_override_settings(settings):
    settings.MOGILEFS_DOMAIN = "from-settings"
    settings.MOGILEFS_CLASS = "thumb"
    storage = MogileFSStorage(domain="from-options", mogile_class="avatar")
    assert storage.domain == "from-options"
    assert storage.mogile_class == "avatar"


def test_a_subclass_attribute_still_selects_the_class(settings):
    """The seed's `class AvatarStorage(storage.__class__): mogile_class = 'avatar'`."""
    settings.MOGILEFS_CLASS = None

    class AvatarStorage(MogileFSStorage):
        mogile_class = "avatar"

    assert AvatarStorage().mogile_class == "avatar"


def test_unknown_option_is_named_in_the_error():
    with pytest.raises(ImproperlyConfigured) as excinfo:
        MogileFSStorage(domian="typo")
    assert "'domian'" in str(excinfo.value)
    assert "domain" in str(excinfo.value)  # the valid options are listed


def test_media_url_falls_back_to_media_url(settings):
    del settings.MOGILEFS_MEDIA_URL
    settings.MEDIA_URL = "/media/"
    assert MogileFSStorage().base_url == "/media/"
    settings.MOGILEFS_MEDIA_URL = "/mogilefs/"
    assert MogileFSStorage().base_url == "/mogilefs/"


@pytest.mark.parametrize(
    "value", ["127.0.0.1:7001, 127.0.0.2:7001", ["127.0.0.1:7001", "127.0.0.2:7001"]]
)
def test_trackers_as_list_or_comma_separated_string(value):
    storage = MogileFSStorage(domain="d", trackers=value)
    assert storage._trackers == ("127.0.0.1:7001", "127.0.0.2:7001")


def test_a_malformed_tracker_is_rejected():
    with pytest.raises(ImproperlyConfigured, match="invalid tracker address 'tracker.example'"):
        MogileFSStorage(domain="d", trackers=["tracker.example"])


def test_missing_domain_or_trackers_is_explained_on_use(settings):
    settings.MOGILEFS_DOMAIN = None
    with pytest.raises(ImproperlyConfigured, match="MOGILEFS_DOMAIN"):
        _ = MogileFSStorage(trackers=["127.0.0.1:7001"]).client
    settings.MOGILEFS_TRACKERS = []
    with pytest.raises(ImproperlyConfigured, match="MOGILEFS_TRACKERS"):
        _ = MogileFSStorage(domain="d").client


def test_import_time_storage_follows_override_settings():
    storage = mogile_storage(klass="avatar")  # as a model field builds it
    with override_settings(MOGILEFS_DOMAIN="overridden", MOGILEFS_TRACKERS="10.9.9.9:7001"):
        assert storage.domain == "overridden"
        assert storage._trackers == ("10.9.9.9:7001",)
        assert storage.mogile_class == "avatar"
    assert storage.domain == "testdomain"


def test_storages_alias_supplies_the_options(settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "mogile": {
            "BACKEND": "storages_mogile.backends.mogile.MogileFSStorage",
            "OPTIONS": {"domain": "aliased", "trackers": ["127.0.0.9:7001"], "key_prefix": "s/"},
        },
    }
    storage = mogile_storage(klass="thumb", storages_alias="mogile")
    assert (storage.domain, storage.key_prefix, storage.mogile_class) == ("aliased", "s/", "thumb")


def test_storages_alias_must_exist():
    with pytest.raises(ImproperlyConfigured, match="storages_alias 'nope'"):
        mogile_storage(storages_alias="nope")


def test_storages_alias_options_are_checked(settings):
    settings.STORAGES = {**settings.STORAGES, "bad": {"BACKEND": "x", "OPTIONS": {"bucket": 1}}}
    with pytest.raises(ImproperlyConfigured, match="'bucket'"):
        mogile_storage(storages_alias="bad")


def test_factory_deconstructs_to_the_class_only(settings):
    settings.MOGILEFS_TRACKERS = ["127.0.0.1:7001"]
    path, args, kwargs = mogile_storage(klass="avatar").deconstruct()
    assert path == "storages_mogile.backends.mogile.MogileFSStorage"
    assert (args, kwargs) == ((), {"mogile_class": "avatar"})


def test_pickle_and_deepcopy_keep_options_and_carry_no_sockets(settings):
    storage = MogileFSStorage(mogile_class="avatar", key_prefix="p/")
    for clone in (pickle.loads(pickle.dumps(storage)), copy.deepcopy(storage)):
        assert clone.mogile_class == "avatar"
        assert clone.key_prefix == "p/"
        assert clone.deconstruct() == storage.deconstruct()


def test_storages_setting_selects_the_backend():
    # The handler behind django.core.files.storage.storages, given a STORAGES
    # value directly: on Django 4.2, override_settings(STORAGES=...) would
    # also override DEFAULT_FILE_STORAGE, and the handler would then drop
    # the OPTIONS of "default" (a settings module is not affected).
    from django.core.files.storage.handler import StorageHandler

    handler = StorageHandler(
        {
            "default": {
                "BACKEND": "storages_mogile.backends.mogile.MogileFSStorage",
                "OPTIONS": {
                    "domain": "media",
                    "trackers": "127.0.0.1:7001",
                    "mogile_class": "avatar",
                },
            }
        }
    )
    storage = handler["default"]
    assert isinstance(storage, MogileFSStorage)
    assert (storage.domain, storage.mogile_class) == ("media", "avatar")


LEGACY_SETTINGS = """
import sys, warnings
import django
from django.conf import settings
warnings.simplefilter("ignore")
settings.configure(
    DEFAULT_FILE_STORAGE="storages_mogile.backends.mogile.MogileFSStorage",
    MOGILEFS_DOMAIN="testdomain",
    MOGILEFS_TRACKERS=sys.argv[1],
)
django.setup()
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
name = default_storage.save("legacy/setting.txt", ContentFile(b"legacy"))
print(type(default_storage._wrapped).__name__, default_storage.open(name).read().decode())
default_storage.delete(name)
"""


@pytest.mark.skipif(django.VERSION >= (5, 1), reason="DEFAULT_FILE_STORAGE was removed in 5.1")
def test_legacy_default_file_storage_on_django_4_2(mogile_cluster):
    # A settings file of its own: on 4.2, overriding DEFAULT_FILE_STORAGE in
    # a running process rewrites the global STORAGES dict in place.
    result = subprocess.run(
        [sys.executable, "-c", LEGACY_SETTINGS, ",".join(mogile_cluster.trackers)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["MogileFSStorage", "legacy"]


def test_backend_is_an_entry_point():
    found = entry_points(group="django_storages.backends")
    names = {entry.name: entry for entry in found}
    assert "mogilefs" in names
    assert names["mogilefs"].load() is MogileFSStorage


def test_only_rb_r_wb_w_modes():
    storage = MogileFSStorage(domain="d", trackers="127.0.0.1:1")
    with pytest.raises(ValueError, match="cannot append"):
        storage.open("x.txt", "ab")


MOGILEFS_BACKEND = "storages_mogile.backends.mogile.MogileFSStorage"


def test_the_one_mogilefs_entry_configures_every_field(settings):
    """The README's quick start: options in STORAGES['default'], a field with its class."""
    settings.MOGILEFS_DOMAIN = None
    settings.MOGILEFS_TRACKERS = []
    field_storage = mogile_storage(klass="avatar")  # built before the settings, as models do
    settings.STORAGES = {
        "default": {
            "BACKEND": MOGILEFS_BACKEND,
            "OPTIONS": {"domain": "media", "trackers": ["10.0.0.1:7001", "10.0.0.2:7001"]},
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    assert field_storage.domain == "media"
    assert field_storage._trackers == ("10.0.0.1:7001", "10.0.0.2:7001")
    assert field_storage.mogile_class == "avatar"
    assert field_storage.deconstruct()[2] == {"mogile_class": "avatar"}


def test_with_several_mogilefs_entries_a_field_names_its_own(settings):
    settings.MOGILEFS_DOMAIN = None
    settings.MOGILEFS_TRACKERS = []
    settings.STORAGES = {
        "default": {"BACKEND": MOGILEFS_BACKEND, "OPTIONS": {"domain": "d", "trackers": "h:1"}},
        "media": {"BACKEND": MOGILEFS_BACKEND, "OPTIONS": {"domain": "m", "trackers": "h:2"}},
    }
    chosen = mogile_storage(klass="thumb", alias="media")
    assert (chosen.domain, chosen._trackers) == ("m", ("h:2",))
    assert chosen.deconstruct()[2] == {"mogile_class": "thumb", "storages_alias": "media"}
    with pytest.raises(ImproperlyConfigured, match=r"several MogileFS entries \(default, media\)"):
        _ = mogile_storage(klass="thumb").client


TIMEOUTS = [
    "connect_timeout",
    "timeout",
    "http_timeout",
    "node_progress_timeout",
    "min_copies_timeout",
    "path_cache_timeout",
]
FLAGS = ["file_overwrite", "noverify", "verify_checksum", "signed_urls"]
BAD_VALUES = [
    *[
        (name, value, "a number of seconds above 0")
        for name in TIMEOUTS
        for value in ("30", None, -1, 0, True, float("nan"), float("inf"))
    ],
    *[(name, value, "True or False") for name in FLAGS for value in ("yes", "False", 1, None)],
    *[
        (name, value, "a number of bytes of at least 1")
        for name in ("chunk_size", "max_memory_size")
        for value in (0, -1, 1.5, "1024", True, None)
    ],
    *[
        (name, value, "at least 1 (an int), or None")
        for name in ("pathcount", "min_copies")
        for value in (0, "2", True, 2.0)
    ],
    ("domain", "", "a domain name"),
    ("domain", 7, "a domain name"),
    ("trackers", 7001, "a list of 'host:port' strs"),
    ("trackers", [7001], "a list of 'host:port' strs"),
    ("mogile_class", "", "a MogileFS class name"),
    ("base_url", 5, "a URL"),
    ("key_prefix", None, "a str"),
    ("path_cache", "", "the alias of a CACHES entry"),
    ("min_copies_action", "ignore", "'raise' or 'log'"),
]


@pytest.mark.parametrize(("name", "value", "form"), BAD_VALUES)
def test_a_bad_value_is_refused_naming_the_option_and_its_form(name, value, form):
    with pytest.raises(ImproperlyConfigured) as caught:
        MogileFSStorage(**{name: value})
    message = str(caught.value)
    assert f"option {name!r} must be " in message
    assert form in message and repr(value) in message


@pytest.mark.parametrize("value", ["30", None, -1])
def test_a_bad_setting_is_refused_before_anything_is_stored(settings, value):
    """The issue's case: the save stored the file, then failed on the value."""
    settings.MOGILEFS_MIN_COPIES = 2
    storage = mogile_storage(klass="avatar")  # as a model field's, made before the setting
    with pytest.raises(ImproperlyConfigured, match="'min_copies_timeout' must be"):
        settings.MOGILEFS_MIN_COPIES_TIMEOUT = value  # the storage resolves its options again
    assert storage.min_copies_timeout == 30.0  # the setting was not taken


@pytest.mark.parametrize(
    "options",
    [
        {name: value for name in TIMEOUTS}
        for value in (1, 0.25)  # an int or a float
    ]
    + [{name: flag for name in FLAGS} for flag in (True, False)]
    + [
        {"chunk_size": 1, "max_memory_size": 1, "pathcount": None, "min_copies": None},
        {"pathcount": 3, "min_copies": 2, "min_copies_action": "log", "path_cache": "default"},
        {"domain": None, "mogile_class": None, "base_url": None, "key_prefix": ""},
    ],
)
def test_good_values_are_accepted(options):
    storage = MogileFSStorage(**options)
    assert all(getattr(storage, name) == value for name, value in options.items())


def test_every_option_is_checked():
    from storages_mogile.backends.mogile import OPTION_CHECKS

    # url_expire is checked with the signing of URLs.
    assert set(MogileFSStorage().get_default_settings()) - {"url_expire"} == set(OPTION_CHECKS)


def test_the_progress_timeout_reaches_the_client(settings):
    settings.MOGILEFS_NODE_PROGRESS_TIMEOUT = 1.5
    where = {"domain": "d", "trackers": "127.0.0.1:1"}
    assert MogileFSStorage(**where).client.nodes.progress_timeout == 1.5
    storage = MogileFSStorage(**where, node_progress_timeout=2)
    assert storage.client.nodes.progress_timeout == 2

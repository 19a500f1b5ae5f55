"""The system checks (storages_mogile/checks.py): a project that triggers each, and one that does not."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core import checks
from django.core.management import CommandError, call_command

from storages_mogile.backends.mogile import STAGING_DIR
from storages_mogile.client import Admin, Client, UnknownKeyError
from storages_mogile.devserver import DevCluster
from tests.client.fakes import closed_port
from tests.conftest import TEST_DOMAIN, Target

MOGILEFS = "storages_mogile.backends.mogile.MogileFSStorage"
STATIC = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}


def reported(deploy: bool = False) -> list[checks.CheckMessage]:
    """What the mogilefs-tagged checks report, but W004, which depends on the
    tracker's database (test_w004 tests it)."""
    return [
        message
        for message in checks.run_checks(tags=["mogilefs"], include_deployment_checks=deploy)
        if message.id != "storages_mogile.W004"
    ]


def ids(deploy: bool = False) -> set[str]:
    """The ids of what the mogilefs-tagged checks report (but W004)."""
    return {message.id for message in reported(deploy)}


def use_mogilefs(settings, trackers: list[str], **options: object) -> None:
    """STORAGES with MogileFS as the default storage, the routed prefix /mogilefs/."""
    settings.ROOT_URLCONF = "tests.serving.urls"
    settings.STORAGES = {
        "default": {
            "BACKEND": MOGILEFS,
            "OPTIONS": {
                "domain": TEST_DOMAIN,
                "trackers": trackers,
                "base_url": "/mogilefs/",
                **options,
            },
        },
        "staticfiles": STATIC,
    }


def test_a_complete_configuration_passes(settings, mogile_target: Target) -> None:
    use_mogilefs(settings, mogile_target.trackers, mogile_class="avatar")
    settings.MOGILEFS_CLASSES = {"avatar": 2}
    assert ids(deploy=True) == set()


def test_e001_e002_a_storage_without_domain_or_trackers(settings) -> None:
    settings.MOGILEFS_DOMAIN = None
    settings.MOGILEFS_TRACKERS = []
    settings.STORAGES = {"default": {"BACKEND": MOGILEFS}, "staticfiles": STATIC}
    assert {"storages_mogile.E001", "storages_mogile.E002"} <= ids()


def test_w001_a_proxy_mode_under_debug(settings, mogile_target: Target) -> None:
    use_mogilefs(settings, mogile_target.trackers)
    settings.MOGILEFS_SERVE_MODE = "perlbal"
    settings.DEBUG = True
    assert "storages_mogile.W001" in ids()
    settings.DEBUG = False
    assert "storages_mogile.W001" not in ids()


def test_w002_urls_the_view_does_not_serve(settings, mogile_target: Target) -> None:
    use_mogilefs(settings, mogile_target.trackers, base_url="/elsewhere/")
    assert "storages_mogile.W002" in ids()
    use_mogilefs(settings, mogile_target.trackers, base_url="https://cdn.example/media/")
    assert "storages_mogile.W002" not in ids()  # another host serves them


def test_w003_a_path_cache_each_process_keeps_to_itself(settings, mogile_target) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "shared": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "c"},
    }
    use_mogilefs(settings, mogile_target.trackers, path_cache="default")
    assert "storages_mogile.W003" in ids()
    use_mogilefs(settings, mogile_target.trackers, path_cache="shared")
    assert "storages_mogile.W003" not in ids()


def test_the_network_checks_run_only_when_deploying(settings) -> None:
    use_mogilefs(settings, [closed_port()])
    assert "storages_mogile.E010" not in ids()
    assert "storages_mogile.E010" in ids(deploy=True)


def test_e011_a_missing_domain(settings, mogile_target: Target) -> None:
    use_mogilefs(settings, mogile_target.trackers, domain="no-such-domain")
    assert "storages_mogile.E011" in ids(deploy=True)


def test_e012_e013_classes_missing_or_with_other_copies(settings, mogile_target) -> None:
    use_mogilefs(settings, mogile_target.trackers, mogile_class="no-such-class")
    assert "storages_mogile.E012" in ids(deploy=True)
    use_mogilefs(settings, mogile_target.trackers, mogile_class="avatar")
    settings.MOGILEFS_CLASSES = {"avatar": 3, "thumb": 1}
    assert ids(deploy=True) == {"storages_mogile.E013"}
    settings.MOGILEFS_CLASSES = {"avatar": 2, "thumb": 1}
    assert ids(deploy=True) == set()


def test_e015_a_hash_type_other_than_declared(settings, mogile_target, md5_class) -> None:
    use_mogilefs(settings, mogile_target.trackers, mogile_class=md5_class)
    others = {"avatar": 2, "thumb": 1}
    settings.MOGILEFS_CLASSES = {md5_class: {"copies": 2, "hashtype": "NONE"}, **others}
    assert ids(deploy=True) == {"storages_mogile.E015"}
    settings.MOGILEFS_CLASSES = {md5_class: {"copies": 2, "hashtype": "MD5"}, **others}
    assert ids(deploy=True) == set()
    settings.MOGILEFS_CLASSES = {md5_class: 2, **others}  # no hash type declared: not compared
    assert ids(deploy=True) == set()


@pytest.mark.parametrize(
    "declared",
    [
        ["avatar"],
        {"avatar": 0},
        {"avatar": "2"},
        {"avatar": True},
        {"avatar": {"hashtype": "MD5"}},
        {"avatar": {"copies": 2, "hashtype": "SHA1"}},
        {"avatar": {"copies": 2, "hash": "MD5"}},
    ],
)
def test_e003_a_malformed_mogilefs_classes(settings, mogile_target, declared) -> None:
    use_mogilefs(settings, mogile_target.trackers, mogile_class="avatar")
    settings.MOGILEFS_CLASSES = declared
    assert ids() == {"storages_mogile.E003"}
    assert ids(deploy=True) == {"storages_mogile.E003"}  # and no traceback from the rest


def test_e014_fewer_writable_hosts_than_copies(settings, dev_cluster: DevCluster) -> None:
    with Admin(dev_cluster.trackers) as admin:
        admin.create_class(TEST_DOMAIN, "triple", 3)
    use_mogilefs(settings, dev_cluster.trackers, mogile_class="triple")
    settings.MOGILEFS_CLASSES = {"triple": 3, "avatar": 2}
    assert ids(deploy=True) == {"storages_mogile.E014"}
    use_mogilefs(settings, dev_cluster.trackers, mogile_class="avatar")
    with Admin(dev_cluster.trackers) as admin:
        admin.set_state("node2", 2, "down")
    assert ids(deploy=True) == {"storages_mogile.E014"}  # 2 copies, 1 writable host


def test_w004_a_tracker_that_takes_other_spellings_for_one_key(settings, mogile_target) -> None:
    """On MariaDB (utf8mb4_general_ci) ``Case`` and ``cASE`` are one key; the
    check finds out with a probe key of its own, and deletes it."""
    use_mogilefs(settings, mogile_target.trackers)
    with Client(TEST_DOMAIN, mogile_target.trackers) as client:
        key = f"w004-{uuid.uuid4().hex}/Case"
        client.store_content(key, b".")
        try:
            folds = _fid(client, key.swapcase()) == client.file_info(key).fid
        finally:
            client.delete(key)
        messages = checks.run_checks(tags=["mogilefs"], include_deployment_checks=True)
        assert [message.id for message in messages] == ["storages_mogile.W004"] * folds
        if folds:
            assert "differ only in letter case, trailing spaces, accents" in messages[0].msg
            assert "ALTER TABLE file MODIFY dkey VARBINARY(255)" in messages[0].hint
        assert not any(key.endswith("Probe") for key in client.iter_keys(f"{STAGING_DIR}/"))


def _fid(client: Client, key: str) -> int | None:
    try:
        return client.file_info(key).fid
    except UnknownKeyError:
        return None


def test_w005_the_probe_of_key_spellings_fails(settings, dev_cluster: DevCluster) -> None:
    use_mogilefs(settings, dev_cluster.trackers)
    with Admin(dev_cluster.trackers) as admin:
        admin.set_state("node1", 1, "down")
        admin.set_state("node2", 2, "down")
    assert ids(deploy=True) == {"storages_mogile.E014", "storages_mogile.W005"}


@pytest.mark.parametrize("declared", [None, {}, {"thumb": 1}])
def test_e018_a_class_used_but_not_declared_as_mogilefs_setup_refuses(
    settings, mogile_target: Target, declared
) -> None:
    use_mogilefs(settings, mogile_target.trackers, mogile_class="avatar")
    settings.MOGILEFS_CLASSES = declared
    assert ids() == set()  # declaring classes is for deploying: no network, no message
    messages = reported(deploy=True)
    assert [message.id for message in messages] == ["storages_mogile.E018"]
    assert "'avatar'" in messages[0].msg and "MOGILEFS_CLASSES" in messages[0].hint
    with pytest.raises(CommandError, match="'avatar'.*MOGILEFS_CLASSES"):
        call_command("mogilefs_setup", "--dry-run", stdout=io.StringIO())
    settings.MOGILEFS_CLASSES = {"avatar": 2}
    assert ids(deploy=True) == set()
    call_command("mogilefs_setup", "--dry-run", stdout=io.StringIO())  # and setup agrees


def test_e016_the_default_class_needs_no_declaration(settings, mogile_target: Target) -> None:
    use_mogilefs(settings, mogile_target.trackers)
    settings.MOGILEFS_CLASSES = {}
    assert ids(deploy=True) == set()
    call_command("mogilefs_setup", "--dry-run", stdout=io.StringIO())


def test_e010_a_tracker_down_prints_only_the_check(tmp_path: Path) -> None:
    """``check --deploy`` in a project without a LOGGING setting of its own."""
    (tmp_path / "down_settings.py").write_text(
        "SECRET_KEY = 'e010'\n"
        "INSTALLED_APPS = ['storages_mogile']\n"
        "ROOT_URLCONF = 'storages_mogile.urls'\n"
        f"STORAGES = {{'default': {{'BACKEND': {MOGILEFS!r}, 'OPTIONS': "
        f"{{'domain': 'media', 'trackers': [{closed_port()!r}]}}}}, 'staticfiles': {STATIC!r}}}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "django", "check", "--deploy", "--tag", "mogilefs"],
        cwd=tmp_path,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "down_settings", "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "SystemCheckError: System check identified some issues:", result.stderr
    assert "(storages_mogile.E010) The MogileFS trackers" in result.stderr
    assert "failed: connect failed" not in "\n".join(
        line for line in lines if "storages_mogile.E010" not in line
    )


@pytest.fixture(autouse=True)
def _no_legacy_mode(settings) -> None:
    settings.MOGILEFS_SERVE_MODE = "stream"


def with_storage(settings, alias: str, trackers: list[str], **options: object) -> None:
    """Add a MogileFS storage to STORAGES (assigned anew: Django sees a setting change)."""
    entry = {"BACKEND": MOGILEFS, "OPTIONS": {"domain": TEST_DOMAIN, "trackers": trackers}}
    entry["OPTIONS"].update(options)  # type: ignore[union-attr]
    settings.STORAGES = {**settings.STORAGES, alias: entry}


def messages(id_: str) -> list[str]:
    return [message.msg for message in checks.run_checks(tags=["mogilefs"]) if message.id == id_]


@pytest.mark.parametrize("outer", ["site/", "Site/"])  # one on a tracker on MariaDB
def test_e016_a_signed_storage_inside_a_routed_unsigned_one(settings, mogile_target, outer) -> None:
    """The docs' old private-files setup: default prefix P, signed prefix P + "private/"."""
    trackers = mogile_target.trackers
    use_mogilefs(settings, trackers, key_prefix=outer)
    spelled_otherwise = [t.replace("127.0.0.1", "localhost") for t in trackers[::-1]]
    with_storage(
        settings, "signed", spelled_otherwise, key_prefix="site/private/", signed_urls=True
    )
    [message] = messages("storages_mogile.E016")
    assert "STORAGES['default']" in message and "STORAGES['signed']" in message
    assert "'site/private/'" in message and "signature" in message


def test_e016_a_storage_whose_route_has_an_access_hook(settings, mogile_target) -> None:
    """tests/serving/urls.py serves "private" at /private/ with an access hook."""
    use_mogilefs(settings, mogile_target.trackers)
    with_storage(settings, "private", mogile_target.trackers, key_prefix="private/")
    [message] = messages("storages_mogile.E016")
    assert "STORAGES['default']" in message and "STORAGES['private']" in message
    assert "access hook" in message


@pytest.mark.parametrize(
    ("outer", "inner"),
    [
        ({}, {"domain": "otherdomain", "signed_urls": True}),
        ({}, {"trackers": ["127.0.0.1:1"], "signed_urls": True}),
        ({"key_prefix": "public/"}, {"signed_urls": True}),  # prefixes apart
        ({}, {}),  # nested, neither signed nor hooked
        ({"signed_urls": True}, {"key_prefix": "", "signed_urls": True}),  # one key space
    ],
)
def test_no_e016_for_key_spaces_apart_or_of_the_same_access(
    settings, mogile_target, outer, inner
) -> None:
    use_mogilefs(settings, mogile_target.trackers, **outer)
    options = {"key_prefix": "private/", "trackers": mogile_target.trackers, **inner}
    with_storage(settings, "signed", options.pop("trackers"), **options)
    assert messages("storages_mogile.E016") == []


def test_e017_a_reproxy_cache_with_an_access_hook(settings, mogile_target) -> None:
    """The URLconf loads; the check names the routes (/private/ has its own hook)."""
    use_mogilefs(settings, mogile_target.trackers)
    assert "storages_mogile.E017" not in ids()
    settings.MOGILEFS_SERVE_REPROXY_CACHE_FOR = 60
    [message] = messages("storages_mogile.E017")
    assert "private/" in message and "mogilefs/" not in message
    settings.MOGILEFS_SERVE_ACCESS = "tests.serving.doc_examples.can_read"
    [message] = messages("storages_mogile.E017")
    assert "mogilefs/" in message and "perlbal/" in message

"""System checks (``manage.py check``) for the project's MogileFS storages.

Registered when ``"storages_mogile"`` is in ``INSTALLED_APPS``. Every check
carries the tag ``mogilefs``:

* without touching the network, on every ``check`` (and ``runserver``):
  each MogileFS storage (the ``STORAGES`` entries and every model field's)
  has a domain and trackers; the serving view is routed at the storages'
  URL prefix; a proxy serve mode under ``DEBUG``; a path cache each process
  keeps for itself; a route reaching a more private storage's keys; a reproxy
  cache with an access hook;
* asking the trackers, with ``manage.py check --deploy`` (only them:
  ``--deploy --tag mogilefs``): the trackers answer, the domain and every
  class a field uses exist with the copies and hash type ``MOGILEFS_CLASSES`` declares,
  every such class is declared there (as ``mogilefs_setup`` requires),
  enough writable devices on distinct hosts for the largest class, and
  whether the trackers' database takes other spellings of a key for the
  key (a probe key stored and deleted again).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.urls import Resolver404, resolve

from storages_mogile.backends.mogile import STAGING_DIR, MogileFSStorage
from storages_mogile.client import Admin, ClassInfo, Client, MogileFSError, UnknownKeyError
from storages_mogile.clusters import (
    DeclaredClass,
    declared_classes,
    mogilefs_storages,
    project_clusters,
    undeclared_classes,
)

if TYPE_CHECKING:
    from storages_mogile.serving.options import ServeOptions
    from storages_mogile.serving.routes import Exposure

TAG = "mogilefs"
# Cache backends that each process keeps to itself: a path cache there goes
# stale in every process but the one that saved or deleted the file.
_PER_PROCESS_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


@checks.register(TAG)
def check_configuration(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Each storage resolves a domain and trackers (E001, E002); MOGILEFS_CLASSES parses (E003)."""
    errors: list[checks.CheckMessage] = []
    for where, storage in mogilefs_storages():
        if not storage.domain:
            errors.append(
                checks.Error(
                    f"The MogileFS storage of {where} has no domain.",
                    hint="Set 'domain' in the OPTIONS of the project's MogileFS entry in "
                    "STORAGES (or MOGILEFS_DOMAIN); with several entries, name one with "
                    "mogile_storage(klass=..., alias='...').",
                    obj=where,
                    id="storages_mogile.E001",
                )
            )
        if not storage._trackers:
            errors.append(
                checks.Error(
                    f"The MogileFS storage of {where} has no trackers.",
                    hint="Set 'trackers' (a list of 'host:port') in the OPTIONS of the "
                    "project's MogileFS entry in STORAGES (or MOGILEFS_TRACKERS).",
                    obj=where,
                    id="storages_mogile.E002",
                )
            )
    try:
        declared_classes()
    except ImproperlyConfigured as exc:
        errors.append(
            checks.Error(
                str(exc),
                hint="Declare each class as its copies ({'avatar': 2}) or as "
                "{'copies': 2, 'hashtype': 'MD5'}.",
                id="storages_mogile.E003",
            )
        )
    return errors


@checks.register(TAG)
def check_serving(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The view is routed at the URL prefix; proxy mode and DEBUG; the path cache (W001-W003)."""
    from storages_mogile.serving.options import NGINX, OPTION_SETTINGS, PERLBAL

    messages: list[checks.CheckMessage] = []
    mode = getattr(settings, OPTION_SETTINGS["mode"][0], None)
    if mode is None and getattr(settings, "SERVE_WITH_PERLBAL", False):
        mode = PERLBAL
    if mode in (PERLBAL, NGINX) and settings.DEBUG:
        messages.append(
            checks.Warning(
                f"MOGILEFS_SERVE_MODE is {mode!r} with DEBUG = True: the view answers with "
                f"headers for {mode.title()} and an empty body, so without {mode.title()} in "
                "front (runserver) every file comes out empty.",
                hint="Use MOGILEFS_SERVE_MODE = 'stream' in development, or run behind the proxy.",
                id="storages_mogile.W001",
            )
        )
    seen: set[tuple[str | None, str | None]] = set()
    for where, storage in mogilefs_storages():
        if (storage.base_url, storage.path_cache) in seen:
            continue  # one message per URL prefix and cache, not per field
        seen.add((storage.base_url, storage.path_cache))
        messages.extend(_routing(where, storage))
        messages.extend(_path_cache(where, storage))
    return messages


def _routing(where: str, storage: MogileFSStorage) -> Iterable[checks.CheckMessage]:
    """W002: the storage's URLs (base_url) do not reach the serving view."""
    from storages_mogile.views import aserve, serve

    base_url = storage.base_url
    if not base_url or urlsplit(base_url).netloc:
        return []  # no URLs, or served from another host (a CDN, the proxy's own name)
    probe = urlsplit(base_url).path + "storages-mogile-check.bin"
    try:
        match = resolve(probe)
    except Resolver404:
        match = None
    except ImportError:
        return []  # a URLconf that does not import: Django's own checks report it
    if match is not None and match.func in (serve, aserve):
        return []
    return [
        checks.Warning(
            f"The URLs of the MogileFS storage of {where} start with {base_url!r}, "
            "but that path is not routed to storages_mogile's view, so its files answer 404.",
            hint="Add path('', include('storages_mogile.urls')) to the URLconf, or make "
            "MOGILEFS_MEDIA_URL (the storage's 'base_url') the prefix your serve_patterns() use.",
            obj=where,
            id="storages_mogile.W002",
        )
    ]


def _path_cache(where: str, storage: MogileFSStorage) -> Iterable[checks.CheckMessage]:
    """W003: a path cache kept per process goes stale in the other processes."""
    alias = storage.path_cache
    if alias is None:
        return []
    backend = settings.CACHES.get(alias, {}).get("BACKEND", "")
    if backend not in _PER_PROCESS_CACHES:
        return []
    return [
        checks.Warning(
            f"The MogileFS storage of {where} keeps its path cache in CACHES[{alias!r}], "
            f"a {backend.rsplit('.', 1)[-1]}: each process has its own, so a file saved or "
            "deleted in one process is served from stale paths by the others.",
            hint="Use a cache every Django process shares (memcached, Redis, the database).",
            obj=where,
            id="storages_mogile.W003",
        )
    ]


@checks.register(TAG)
def check_access(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Private keys reachable through another storage's routes (E016); a reproxy cache
    with an access hook (E017)."""
    from storages_mogile.serving.routes import key_access

    try:
        access = key_access()
    except ImportError:
        return []  # a URLconf that does not import: Django's own checks report it
    exposed: dict[tuple[str, str], list[Exposure]] = {}
    for route in access.routes:
        for exposure in access.exposures(route):
            exposed.setdefault((exposure.served.where, exposure.prefix), []).append(exposure)
    messages = [_exposed(exposures) for exposures in exposed.values()]
    cached = [route.pattern for route in access.routes if _caches_behind_a_hook(route.options)]
    if cached:
        messages.append(
            checks.Error(
                f"The serve route(s) {', '.join(map(repr, cached))} have both an access hook "
                "and a Perlbal reproxy cache: Perlbal would answer from its cache without "
                "asking the hook, so these routes do not ask Perlbal to cache.",
                hint="Drop reproxy_cache_for (MOGILEFS_SERVE_REPROXY_CACHE_FOR) from these "
                "routes, or serve public files through a route without an access hook.",
                id="storages_mogile.E017",
            )
        )
    return messages


def _exposed(exposures: list[Exposure]) -> checks.CheckMessage:
    """E016: one storage's routes reach keys that another storage keeps private."""
    first = exposures[0]
    private = ", ".join(dict.fromkeys(space.where for space in first.private))
    routes = ", ".join(repr(exposure.route.pattern) for exposure in exposures)
    return checks.Error(
        f"The MogileFS storage of {first.served.where} (key prefix {first.served.prefix!r}) "
        f"names the keys under {first.prefix!r} of {private} on the same MogileFS domain, "
        f"which need {first.needs}; its serve route(s) {routes} do not ask for it, so they "
        f"answer 404 for names under {first.prefix!r}.",
        hint="Give storages of different access their own domain, or key prefixes of which "
        "neither starts the other (such as 'public/' and 'private/'); see docs/serving.md.",
        obj=first.served.where,
        id="storages_mogile.E016",
    )


def _caches_behind_a_hook(options: ServeOptions) -> bool:
    return options.reproxy_cache_for is not None and options.access is not None


@checks.register(TAG, deploy=True)
def check_cluster(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Ask the trackers: reachable, domain and classes, writable devices (E010-E015,
    E018); keys of other spellings taken for one key (W004, W005)."""
    messages: list[checks.CheckMessage] = []
    for cluster in project_clusters():
        messages.extend(_check_one_cluster(cluster.trackers, cluster.domain, cluster.classes))
    return messages


def _check_one_cluster(
    trackers: tuple[str, ...], domain: str, classes: dict[str, str]
) -> list[checks.CheckMessage]:
    try:
        with Admin(list(trackers), timeout=5.0) as admin:
            domains = admin.get_domains()
            existing = admin.get_classes(domain)
            hosts = admin.get_hosts()
            devices = admin.get_devices()
    except (MogileFSError, ImproperlyConfigured) as exc:
        return [
            checks.Error(
                f"The MogileFS trackers {', '.join(trackers)} do not answer: {exc}",
                hint="Start the trackers, or correct 'trackers' in the STORAGES OPTIONS "
                "(MOGILEFS_TRACKERS).",
                id="storages_mogile.E010",
            )
        ]
    if domain not in domains:
        return [
            checks.Error(
                f"The MogileFS domain {domain!r} does not exist on {', '.join(trackers)}.",
                hint="Create it: 'manage.py mogilefs_setup' (or 'mogadm domain add DOMAIN').",
                id="storages_mogile.E011",
            )
        ]
    messages = _classes(domain, existing, classes)
    messages.extend(_devices(domain, domains[domain], classes, hosts, devices))
    messages.extend(_key_spellings(trackers, domain))
    return messages


def _key_spellings(trackers: tuple[str, ...], domain: str) -> list[checks.CheckMessage]:
    """W004: the trackers take keys that differ in case, trailing spaces or accents
    for one key; W005: the probe that finds out failed."""
    probe = f"{STAGING_DIR}/{int(time.time())}-{uuid.uuid4().hex}-check-Probe"
    try:
        with Client(domain, list(trackers), timeout=5.0) as client:
            folded = _folded_spellings(client, probe)
    except MogileFSError as exc:
        return [
            checks.Warning(
                f"Could not find out whether the MogileFS trackers {', '.join(trackers)} take "
                f"keys of other spellings for one key: storing, reading or deleting the probe "
                f"key {probe!r} in domain {domain!r} failed: {exc}",
                hint="Run 'manage.py check --deploy' again once the cluster stores files; "
                "delete the probe key if it is left.",
                id="storages_mogile.W005",
            )
        ]
    if not folded:
        return []
    return [
        checks.Warning(
            f"The MogileFS trackers {', '.join(trackers)} take keys that differ only in "
            f"{', '.join(folded)} for one key (domain {domain!r}): their database compares "
            "keys by a collation, like MariaDB's and MySQL's utf8mb4_general_ci. The storage "
            "still keeps each name to its own file, at one more tracker request per read, "
            "exists, delete and overwriting save, and saves 'photo.jpg' beside 'Photo.JPG' "
            "under another name; other programs on the domain replace each other's files.",
            hint="Make the database compare keys as bytes: ALTER TABLE file MODIFY dkey "
            "VARBINARY(255); ALTER TABLE tempfile MODIFY dkey VARBINARY(255); "
            "(docs/operating.md, 'Databases').",
            id="storages_mogile.W004",
        )
    ]


def _folded_spellings(client: Client, key: str) -> list[str]:
    """What the tracker folds: ``key`` is stored, its other spellings are looked
    up (the same fid: one key to the tracker), and it is deleted again."""
    variants = {
        "letter case": key.swapcase(),
        "trailing spaces": key + " ",
        "accents": key[:-1] + "é",
    }
    client.store_content(key, b"storages-mogile check --deploy")
    try:
        fid = client.file_info(key).fid
        return [what for what, variant in variants.items() if _fid(client, variant) == fid]
    finally:
        client.delete(key)


def _fid(client: Client, key: str) -> int | None:
    try:
        return client.file_info(key).fid
    except UnknownKeyError:
        return None


def _classes(
    domain: str, existing: dict[str, ClassInfo], used: dict[str, str]
) -> list[checks.CheckMessage]:
    """E012: a class a field uses is missing; E013/E015: its copies or hash type differ
    from MOGILEFS_CLASSES; E018: it is not declared there, which mogilefs_setup refuses
    (E013, E015 and E018 are left out when E003 finds the declaration broken)."""
    messages: list[checks.CheckMessage] = []
    try:
        declared = declared_classes()
    except ImproperlyConfigured:
        declared = {}
    else:
        messages.extend(_undeclared(domain, used, declared))
    for cls, where in sorted(used.items()):
        if cls not in existing:
            messages.append(
                checks.Error(
                    f"{where} stores in MogileFS class {cls!r}, which domain {domain!r} "
                    "does not have: every save would fail.",
                    hint="Declare its copies in MOGILEFS_CLASSES and run 'manage.py "
                    "mogilefs_setup' (or 'mogadm class add DOMAIN CLASS --mindevcount=N').",
                    obj=where,
                    id="storages_mogile.E012",
                )
            )
    for cls, wanted in sorted(declared.items()):
        found = existing.get(cls)
        if found is not None and found.mindevcount != wanted.copies:
            messages.append(
                checks.Error(
                    f"MogileFS class {cls!r} of domain {domain!r} keeps {found.mindevcount} "
                    f"copies; MOGILEFS_CLASSES declares {wanted.copies}.",
                    hint="Change the class ('manage.py mogilefs_setup --update') or "
                    "the declaration.",
                    id="storages_mogile.E013",
                )
            )
        if found is not None and wanted.hashtype not in (None, found.hashtype):
            messages.append(
                checks.Error(
                    f"MogileFS class {cls!r} of domain {domain!r} has hash type "
                    f"{found.hashtype}; MOGILEFS_CLASSES declares {wanted.hashtype}.",
                    hint="Change the class ('manage.py mogilefs_setup --update') or "
                    "the declaration.",
                    id="storages_mogile.E015",
                )
            )
    return messages


def _undeclared(
    domain: str, used: dict[str, str], declared: dict[str, DeclaredClass]
) -> list[checks.CheckMessage]:
    return [
        checks.Error(
            f"{where} stores in MogileFS class {cls!r} (domain {domain!r}), which "
            "MOGILEFS_CLASSES does not declare: 'manage.py mogilefs_setup' refuses to run.",
            hint=f"Declare its copies in MOGILEFS_CLASSES, e.g. {{{cls!r}: 2}}.",
            obj=where,
            id="storages_mogile.E018",
        )
        for cls, where in undeclared_classes(used, declared)
    ]


def _devices(
    domain: str,
    existing: dict[str, int],
    used: dict[str, str],
    hosts: list[dict[str, str]],
    devices: list[dict[str, str]],
) -> list[checks.CheckMessage]:
    """E014: fewer writable devices on distinct hosts than the largest class needs."""
    needed = max((existing.get(cls, 0) for cls in used), default=0)
    alive_hosts = {host.get("hostid") for host in hosts if host.get("status") == "alive"}
    writable_hosts = {
        device.get("hostid")
        for device in devices
        if device.get("status") == "alive" and device.get("hostid") in alive_hosts
    }
    if len(writable_hosts) >= needed:
        return []
    return [
        checks.Error(
            f"Domain {domain!r} has a class keeping {needed} copies, but only "
            f"{len(writable_hosts)} host(s) have a writable (alive) device: MogileFS cannot "
            "make every copy.",
            hint="Add storage hosts and devices ('mogadm host add', 'mogadm device add'), "
            "or bring down devices back up ('mogadm device mark ... alive').",
            id="storages_mogile.E014",
        )
    ]

"""``manage.py mogilefs_setup``: create the project's MogileFS domain and replication classes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from storages_mogile.client import Admin, ClassInfo, MogileFSError, TrackerError
from storages_mogile.clusters import (
    Cluster,
    DeclaredClass,
    declared_classes,
    project_clusters,
    undeclared_classes,
)


class Command(BaseCommand):
    help = (
        "Create the MogileFS domain of every MogileFS storage of the project, and the "
        "replication classes MOGILEFS_CLASSES declares there with their number of copies "
        "(mindevcount) and hash type. Safe to run again: what exists is left as it is. A "
        "class that exists with other copies or another hash type is changed only with "
        "--update. Nothing is ever deleted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would be done, change nothing"
        )
        parser.add_argument(
            "--update",
            "--update-copies",
            action="store_true",
            dest="update",
            help="set the copies and hash type of existing classes to what MOGILEFS_CLASSES "
            "declares",
        )

    def handle(self, *args: Any, dry_run: bool, update: bool, **options: Any) -> None:
        clusters = project_clusters()
        if not clusters:
            raise CommandError(
                "No MogileFS storage with a domain and trackers: configure one in STORAGES "
                "(see 'manage.py check')."
            )
        declared = declared_classes()
        undeclared = sorted(
            pair for cluster in clusters for pair in undeclared_classes(cluster.classes, declared)
        )
        if undeclared:
            listed = ", ".join(f"{cls!r} ({where})" for cls, where in undeclared)
            raise CommandError(
                f"Classes used without declared copies: {listed}. Add them to "
                "MOGILEFS_CLASSES, e.g. {'avatar': 2}."
            )
        differing = 0
        for cluster in clusters:
            differing += self._set_up(cluster, declared, dry_run, update)
        if differing:
            raise CommandError(
                f"{differing} class(es) differ from what MOGILEFS_CLASSES declares; "
                "run again with --update to change them."
            )

    def _set_up(
        self,
        cluster: Cluster,
        declared: dict[str, DeclaredClass],
        dry_run: bool,
        update: bool,
    ) -> int:
        """Create what is missing in one cluster; the number of classes left differing."""
        domain = cluster.domain
        verb = "would create" if dry_run else "created"
        try:
            with Admin(list(cluster.trackers)) as admin:
                domains = admin.get_domains()
                if domain in domains or (not dry_run and not _created(admin.create_domain, domain)):
                    self.stdout.write(f"domain {domain}: exists")
                else:
                    self.stdout.write(f"domain {domain}: {verb}")
                existing = admin.get_classes(domain) if domain in domains else {}
                return sum(
                    self._class(admin, domain, cls, wanted, existing.get(cls), dry_run, update)
                    for cls, wanted in sorted(declared.items())
                )
        except MogileFSError as exc:
            raise CommandError(f"MogileFS ({', '.join(cluster.trackers)}): {exc}") from exc

    def _class(
        self,
        admin: Admin,
        domain: str,
        cls: str,
        wanted: DeclaredClass,
        current: ClassInfo | None,
        dry_run: bool,
        update: bool,
    ) -> int:
        """Create or check one class; 1 if it is left differing, else 0."""
        label = f"class {domain}/{cls} ({_described(wanted.copies, wanted.hashtype)})"
        create = (admin.create_class, domain, cls, wanted.copies)
        if current is None and (dry_run or _created(*create, hashtype=wanted.hashtype)):
            self.stdout.write(f"{label}: {'would create' if dry_run else 'created'}")
            return 0
        if current is None:  # created meanwhile, or listed late by a lagging tracker
            current = admin.get_classes(domain).get(cls)
        if current is None:
            self.stdout.write(f"{label}: exists")
            return 0
        hashtype = current.hashtype if wanted.hashtype is None else wanted.hashtype
        if (current.mindevcount, current.hashtype) == (wanted.copies, hashtype):
            self.stdout.write(f"{label}: exists")
            return 0
        found = _described(current.mindevcount, current.hashtype)
        if not update:
            self.stdout.write(self.style.WARNING(f"{label}: exists with {found}, left as it is"))
            return 1
        if not dry_run:
            admin.update_class(domain, cls, wanted.copies, hashtype=wanted.hashtype)
        self.stdout.write(f"{label}: {'would change' if dry_run else 'changed'} from {found}")
        return 0


def _described(copies: int, hashtype: str | None) -> str:
    """``"2 copies"``, or ``"2 copies, MD5"`` for a class with a hash type."""
    return f"{copies} copies" + (f", {hashtype}" if hashtype and hashtype != "NONE" else "")


def _created(create: Callable[..., None], *args: Any, **kwargs: Any) -> bool:
    """Run a create_* call; False when the tracker says it exists already.

    With several trackers, one that has not refreshed its cache yet may
    list a domain or class as missing that another has just created.
    """
    try:
        create(*args, **kwargs)
    except TrackerError as exc:
        if exc.code in ("domain_exists", "class_exists"):
            return False
        raise
    return True

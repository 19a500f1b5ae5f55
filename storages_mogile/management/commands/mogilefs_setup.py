"""``manage.py mogilefs_setup``: create the project's MogileFS domain and replication classes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from storages_mogile.client import Admin, MogileFSError, TrackerError
from storages_mogile.clusters import Cluster, declared_classes, project_clusters


class Command(BaseCommand):
    help = (
        "Create the MogileFS domain of every MogileFS storage of the project, and the "
        "replication classes MOGILEFS_CLASSES declares there with their number of copies "
        "(mindevcount). Safe to run again: what exists is left as it is. A class that "
        "exists with other copies is changed only with --update-copies. Nothing is ever "
        "deleted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would be done, change nothing"
        )
        parser.add_argument(
            "--update-copies",
            action="store_true",
            help="set the copies of existing classes to what MOGILEFS_CLASSES declares",
        )

    def handle(self, *args: Any, dry_run: bool, update_copies: bool, **options: Any) -> None:
        clusters = project_clusters()
        if not clusters:
            raise CommandError(
                "No MogileFS storage with a domain and trackers: configure one in STORAGES "
                "(see 'manage.py check')."
            )
        declared = declared_classes()
        undeclared = sorted(
            (cls, where)
            for cluster in clusters
            for cls, where in cluster.classes.items()
            if cls != "default" and cls not in declared
        )
        if undeclared:
            listed = ", ".join(f"{cls!r} ({where})" for cls, where in undeclared)
            raise CommandError(
                f"Classes used without declared copies: {listed}. Add them to "
                "MOGILEFS_CLASSES, e.g. {'avatar': 2}."
            )
        differing = 0
        for cluster in clusters:
            differing += self._set_up(cluster, declared, dry_run, update_copies)
        if differing:
            raise CommandError(
                f"{differing} class(es) keep other copies than MOGILEFS_CLASSES declares; "
                "run again with --update-copies to change them."
            )

    def _set_up(
        self, cluster: Cluster, declared: dict[str, int], dry_run: bool, update_copies: bool
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
                existing = domains.get(domain, {})
                differing = 0
                for cls, copies in sorted(declared.items()):
                    differing += self._class(
                        admin, domain, cls, copies, existing.get(cls), dry_run, update_copies
                    )
                return differing
        except MogileFSError as exc:
            raise CommandError(f"MogileFS ({', '.join(cluster.trackers)}): {exc}") from exc

    def _class(
        self,
        admin: Admin,
        domain: str,
        cls: str,
        copies: int,
        current: int | None,
        dry_run: bool,
        update_copies: bool,
    ) -> int:
        """Create or check one class; 1 if it is left with other copies, else 0."""
        label = f"class {domain}/{cls} ({copies} copies)"
        if current is None and (dry_run or _created(admin.create_class, domain, cls, copies)):
            self.stdout.write(f"{label}: {'would create' if dry_run else 'created'}")
            return 0
        if current is None:  # created meanwhile: ask again for its copies
            current = admin.get_domains().get(domain, {}).get(cls, copies)
        if current == copies:
            self.stdout.write(f"{label}: exists")
            return 0
        if not update_copies:
            self.stdout.write(
                self.style.WARNING(f"{label}: exists with {current} copies, left as it is")
            )
            return 1
        if not dry_run:
            admin.update_class(domain, cls, copies)
        self.stdout.write(
            f"{label}: {'would change' if dry_run else 'changed'} from {current} copies"
        )
        return 0


def _created(create: Callable[..., None], *args: Any) -> bool:
    """Run a create_* call; False when the tracker says it exists already.

    With several trackers, one that has not refreshed its cache yet may
    list a domain or class as missing that another has just created.
    """
    try:
        create(*args)
    except TrackerError as exc:
        if exc.code in ("domain_exists", "class_exists"):
            return False
        raise
    return True

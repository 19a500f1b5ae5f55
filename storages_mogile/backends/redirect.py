"""Redirection of every MogileFSStorage to one cluster, domain and key prefix, for tests.

While :func:`redirect_storages` is active, every ``MogileFSStorage`` of the
process, built before or during it, resolves its options and then takes the
redirection's trackers and domain in place of its own, and puts its own key
prefix under the redirection's, after its own domain's name::

    <prefix><the storage's own domain>/<the storage's own key_prefix><name>

so storages that are apart in production (another domain, another prefix)
stay apart in the one test domain. When it ends, every storage resolves its
own options again. The pytest plugin's ``mogilefs`` fixture uses it.

Like the tracker guard (``storages_mogile.client.guard``), the state is one
module global, so threads see it too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.dispatch import Signal

if TYPE_CHECKING:
    from storages_mogile.backends.mogile import MogileFSStorage

#: Sent when a redirection starts or ends; every MogileFSStorage resolves its
#: options again.
redirection_changed = Signal()


@dataclass(frozen=True)
class Redirection:
    """Where every MogileFSStorage goes while the redirection is active."""

    trackers: tuple[str, ...]
    domain: str
    key_prefix: str

    def apply(self, storage: MogileFSStorage) -> None:
        """Point ``storage`` (its options just resolved) here."""
        own_domain = storage.domain or self.domain
        storage.key_prefix = f"{self.key_prefix}{own_domain}/{storage.key_prefix}"
        storage.domain = self.domain
        storage.trackers = list(self.trackers)


_active: Redirection | None = None


def active_redirection() -> Redirection | None:
    """The redirection in force, if any."""
    return _active


@contextlib.contextmanager
def redirect_storages(
    trackers: Iterable[str], domain: str, key_prefix: str
) -> Iterator[Redirection]:
    """Send every MogileFSStorage to ``trackers`` and ``domain``, under ``key_prefix``."""
    global _active
    if _active is not None:
        raise RuntimeError("redirect_storages() is already active; it does not nest.")
    _active = Redirection(tuple(trackers), domain, key_prefix)
    try:
        redirection_changed.send(sender=Redirection)
        yield _active
    finally:
        _active = None
        redirection_changed.send(sender=Redirection)

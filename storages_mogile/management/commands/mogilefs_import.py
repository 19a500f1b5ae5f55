"""``manage.py mogilefs_import``: copy existing media into MogileFS under the same names."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.core.files.storage import InvalidStorageError, Storage, storages
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import FileField, Model
from tqdm import tqdm

from storages_mogile.backends.mogile import MogileFSStorage
from storages_mogile.client import KeyExistsError, UnknownKeyError

CHUNK = 1 << 20


@dataclass
class Copy:
    """One file to copy: its name, and the MogileFS storage it goes to."""

    name: str
    destination: MogileFSStorage


class ConflictError(Exception):
    """The destination key holds other content than the source's file."""


@dataclass(frozen=True)
class Rule:
    """When a file already there counts as copied, and whether other content is replaced."""

    verify: bool  # compare the content of same-size files (else the size decides)
    overwrite: bool  # replace other content instead of reporting a conflict


@dataclass
class Tally:
    """What the copies came to, counted from several threads."""

    copied: int = 0
    copied_bytes: int = 0
    skipped: int = 0
    conflicts: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Command(BaseCommand):
    help = (
        "Copy the files of FileFields ('app_label.Model.field', or 'app_label.Model' for all "
        "its FileFields) from their current storage, the STORAGES alias --source "
        "(FileSystemStorage, S3, ...), into the field's MogileFS storage under the same "
        "names, in the field's replication class. With --path, copy everything under that "
        "path of --source into the default MogileFS storage instead. Streams every file; "
        "never deletes the source. Resumable: a file already in MogileFS with the same size "
        "is skipped (--verify compares the content too). A key that holds other content "
        "(another size, or other bytes with --verify) is a conflict: listed and left "
        "alone, unless --overwrite. Exits 1 if any file failed or conflicted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("fields", nargs="*", help="app_label.Model.field or app_label.Model")
        parser.add_argument("--source", required=True, help="the STORAGES alias to copy from")
        parser.add_argument("--path", help="copy everything under this path of --source")
        parser.add_argument("--jobs", type=int, default=4, help="files copied at once (default 4)")
        parser.add_argument(
            "--verify", action="store_true", help="compare the content of files already there"
        )
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="replace keys that hold other content (conflicts) with the source's file",
        )
        parser.add_argument("--dry-run", action="store_true", help="list what would be copied")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["jobs"] < 1:
            raise CommandError(f"--jobs must be at least 1, not {options['jobs']}.")
        if bool(options["fields"]) == (options["path"] is not None):
            raise CommandError("Name FileFields to import, or give --path (not both).")
        source = _storage(options["source"])
        copies = (
            list(_under_path(source, options["path"]))
            if options["path"] is not None
            else list(_of_fields(options["fields"]))
        )
        if options["dry_run"]:
            for copy in copies:
                self.stdout.write(f"would copy {copy.name} to {copy.destination.domain}")
            self.stdout.write(f"{len(copies)} file(s) to copy or check")
            return
        rule = Rule(options["verify"], options["overwrite"])
        tally = self._copy_all(source, copies, options["jobs"], rule)
        self.stdout.write(
            f"copied {tally.copied} file(s), {tally.copied_bytes} bytes; skipped "
            f"{tally.skipped} already there; {len(tally.conflicts)} conflicts; "
            f"{len(tally.failures)} failed"
        )
        for conflict in tally.conflicts:
            self.stderr.write(f"  conflict: {conflict}")
        for failure in tally.failures:
            self.stderr.write(f"  failed: {failure}")
        if tally.conflicts or tally.failures:
            raise CommandError(
                f"{len(tally.conflicts)} conflict(s) left alone (--overwrite replaces them) "
                f"and {len(tally.failures)} failure(s), listed above."
            )

    def _copy_all(self, source: Storage, copies: list[Copy], jobs: int, rule: Rule) -> Tally:
        tally = Tally()
        progress = tqdm(total=len(copies), unit=" files", file=self.stderr, desc="importing")

        def one(copy: Copy) -> None:
            try:
                copied = _copy(source, copy, rule)
            except ConflictError as exc:
                with tally.lock:
                    tally.conflicts.append(f"{copy.name}: {exc}")
            except Exception as exc:  # noqa: BLE001  any storage's error: listed, the rest go on
                with tally.lock:
                    tally.failures.append(f"{copy.name}: {exc}")
            else:
                with tally.lock:
                    if copied is None:
                        tally.skipped += 1
                    else:
                        tally.copied += 1
                        tally.copied_bytes += copied
            with tally.lock:
                progress.update(1)
                progress.set_postfix(bytes=tally.copied_bytes, refresh=False)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, copies))
        progress.close()
        return tally


def _copy(source: Storage, copy: Copy, rule: Rule) -> int | None:
    """Copy one file; the bytes copied, or None when it was there already.

    ConflictError when the key holds other content and ``rule`` does not
    overwrite. A key that was free is only ever created, never replaced: a
    save that takes it during the copy is a conflict too.
    """
    destination, name = copy.destination, copy.name
    size = source.size(name)
    key = destination.key_for(name)
    stored = _stored_size(destination, key)
    if stored is not None:
        if stored == size and (not rule.verify or _same_content(source, destination, name)):
            return None
        if not rule.overwrite:
            other = "other bytes" if stored == size else f"{stored} bytes, not {size}"
            raise ConflictError(f"{key} holds other content ({other})")
    with source.open(name, "rb") as stream:
        if stored is not None:  # a conflict, and the operator asked to replace it
            destination._store(key, stream)
            return size
        try:
            destination.client.store_new_file(
                [key], stream, cls=destination.mogile_class, staging_key=destination._staging_key()
            )
        except KeyExistsError as exc:
            raise ConflictError(f"{key} was saved by someone else during the copy") from exc
    destination._stored(key)
    return size


def _stored_size(destination: MogileFSStorage, key: str) -> int | None:
    """The size MogileFS has for ``key`` (one tracker round trip); None when it is not there."""
    try:
        return destination.client.file_info(key).length
    except UnknownKeyError:
        return None


def _same_content(source: Storage, destination: Storage, name: str) -> bool:
    return _digest(source, name) == _digest(destination, name)


def _digest(storage: Storage, name: str) -> str:
    digest = hashlib.sha256()
    with storage.open(name, "rb") as stream:
        for chunk in _chunks(stream):
            digest.update(chunk)
    return digest.hexdigest()


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


def _storage(alias: str) -> Storage:
    try:
        return storages[alias]
    except InvalidStorageError as exc:
        raise CommandError(f"--source {alias!r} is not a usable STORAGES alias: {exc}") from exc


def _default_mogilefs() -> MogileFSStorage:
    default = storages["default"]
    if not isinstance(default, MogileFSStorage):
        raise CommandError(
            "The default storage is not a MogileFSStorage: name the FileFields whose "
            "MogileFS storage the files go to instead of --path."
        )
    return default


def _under_path(source: Storage, path: str) -> Iterator[Copy]:
    """Every file below ``path`` of the source storage, for the default MogileFS storage."""
    destination = _default_mogilefs()
    pending = [path.strip("/")]
    while pending:
        directory = pending.pop()
        directories, files = source.listdir(directory)
        prefix = f"{directory}/" if directory else ""
        pending.extend(prefix + name for name in directories)
        for name in sorted(files):
            yield Copy(prefix + name, destination)


def _of_fields(labels: list[str]) -> Iterator[Copy]:
    """The distinct names stored in the given FileFields, each for its field's storage."""
    seen: set[tuple[int, str]] = set()
    for model, file_field in _fields(labels):
        destination = file_field.storage
        if not isinstance(destination, MogileFSStorage):
            destination = _default_mogilefs()
        values = model._base_manager.values_list(file_field.attname, flat=True).distinct()
        for name in values.iterator():
            if name and (id(destination), name) not in seen:
                seen.add((id(destination), name))
                yield Copy(name, destination)


def _fields(labels: list[str]) -> Iterator[tuple[type[Model], FileField]]:
    for label in labels:
        parts = label.split(".")
        if len(parts) not in (2, 3):
            raise CommandError(f"{label!r}: expected app_label.Model or app_label.Model.field.")
        try:
            model = apps.get_model(parts[0], parts[1])
        except LookupError as exc:
            raise CommandError(f"{label!r}: {exc}") from exc
        if len(parts) == 2:
            found = [f for f in model._meta.get_fields() if isinstance(f, FileField)]
            if not found:
                raise CommandError(f"{label!r} has no FileField.")
            yield from ((model, f) for f in found)
            continue
        try:
            file_field = model._meta.get_field(parts[2])
        except FieldDoesNotExist as exc:
            raise CommandError(f"{label!r}: {exc}") from exc
        if not isinstance(file_field, FileField):
            raise CommandError(f"{label!r} is not a FileField.")
        yield model, file_field

"""The MogileFS client for asyncio: :class:`AsyncClient`.

It runs the same operations as the blocking :class:`~.client.Client`
(:mod:`.operations`: the rules are written once), performing their tracker
requests with an :class:`~.aio.AsyncTrackerPool` and their storage-node
requests with :class:`~.aionodes.AsyncStorageNodes` (aiohttp: the ``async``
extra), so it gives the same answers and raises the same errors, without
blocking the event loop.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterable
from typing import IO, TYPE_CHECKING, Any, TypeVar

from .aio import AsyncTrackerPool
from .files import UploadSource
from .operations import Emit, Operations, Stepper, Transport
from .reading import NodeStat

try:
    from .aionodes import AsyncNodeReader, AsyncStorageNodes
except ImportError as exc:  # aiohttp is an optional dependency
    raise ImportError(
        f"the asyncio MogileFS client needs aiohttp ({exc}): install storages-mogile[async]"
    ) from exc

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

    from .operations import FileInfo, Location, Operation, ReadOptions, Settings

T = TypeVar("T")


class AsyncClient(Operations):
    """Files in one MogileFS domain, from asyncio: :class:`~.client.Client`'s
    settings, methods and errors, with coroutines.

    ``await aclient.file_info(key)``, ``async for key in
    aclient.iter_keys(prefix)``, ``await aclient.store_file(key, fileobj)``
    (a binary file, read in chunks in the event loop: a file on disk or in
    memory), ``await aclient.read_file(key)`` (an
    :class:`~.aionodes.AsyncNodeReader`); ``await aclient.aclose()`` (or
    ``async with``) in each event loop that used it, before the loop ends,
    closes that loop's tracker and storage-node connections. An
    AsyncClient may be shared by tasks and by event loops in several
    threads (each loop has its own connections); a forked child runs an
    event loop of its own, where it opens connections of its own.
    """

    pool_class = AsyncTrackerPool
    trackers: AsyncTrackerPool

    def __init__(
        self, domain: str, trackers: str | Iterable[str], **settings: Unpack[Settings]
    ) -> None:
        super().__init__(domain, trackers, **settings)
        self.nodes = AsyncStorageNodes(**self.node_settings)

    # Storing

    async def store_content(self, key: str, data: bytes, cls: str | None = None) -> int:
        """As :meth:`.Client.store_content`."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"store_content needs bytes, got {type(data).__name__}")
        return await self.store_file(key, io.BytesIO(data), cls)

    async def store_file(self, key: str, fileobj: IO[bytes], cls: str | None = None) -> int:
        """As :meth:`.Client.store_file`."""
        return (await self._run(self._store(key, fileobj, cls)))[1]

    async def store_new_file(
        self, keys: Iterable[str], fileobj: IO[bytes], cls: str | None = None, *, staging_key: str
    ) -> str:
        """As :meth:`.Client.store_new_file`."""
        return await self._run(self._store_new_file(keys, fileobj, cls, staging_key))

    async def records_checksums(self, cls: str | None) -> bool:
        """As :meth:`.Client.records_checksums`."""
        return await self._run(self._records_checksums(cls))

    async def copies_wanted(self, cls: str | None) -> int:
        """As :meth:`.Client.copies_wanted`."""
        return await self._run(self._copies_wanted(cls))

    async def wait_for_copies(self, key: str, copies: int, timeout: float) -> int:
        """As :meth:`.Client.wait_for_copies`."""
        return await self._run(self._wait_for_copies(key, copies, timeout))

    # Reading

    async def file_info(self, key: str) -> FileInfo:
        """As :meth:`.Client.file_info`."""
        return await self._run(self._file_info(key))

    async def get_paths(
        self, key: str, noverify: bool = False, pathcount: int | None = None
    ) -> list[str]:
        """As :meth:`.Client.get_paths`."""
        return await self._run(self._get_paths(key, noverify, pathcount))

    async def locate(
        self, key: str, noverify: bool = False, pathcount: int | None = None
    ) -> Location:
        """As :meth:`.Client.locate`."""
        return await self._run(self._locate(key, noverify, pathcount))

    async def read_file(self, key: str, **options: Unpack[ReadOptions]) -> AsyncNodeReader:
        """As :meth:`.Client.read_file`: an open :class:`~.aionodes.AsyncNodeReader`
        (``await reader.read(n)``, ``async for chunk in reader``, ``await
        reader.aclose()``)."""
        reader = AsyncNodeReader(self.nodes, **(await self._run(self._reader(key, options))))
        await reader.open()
        return reader

    async def get_file_data(self, key: str) -> bytes:
        """As :meth:`.Client.get_file_data`."""
        async with await self.read_file(key) as reader:
            return await reader.read()

    async def stat(
        self, key: str, paths: list[str] | None = None, size: int | None = None
    ) -> NodeStat:
        """As :meth:`.Client.stat`."""
        return await self._run(self._stat(key, paths, size))

    # Listing

    async def list_keys(
        self, prefix: str | None = None, after: str | None = None, limit: int | None = None
    ) -> list[str]:
        """As :meth:`.Client.list_keys`."""
        return await self._run(self._list_page(prefix, after, limit))

    def iter_keys(self, prefix: str | None = None, page_size: int = 1000) -> AsyncIterator[str]:
        """As :meth:`.Client.iter_keys`: ``async for key in aclient.iter_keys(prefix)``."""
        return Asynchronous(self.trackers, self.nodes).iterate(self._iter_keys(prefix, page_size))

    async def folds_keys(self, key: str, other: str) -> bool:
        """As :meth:`.Client.folds_keys`."""
        return await self._run(self._folds(key, other))

    async def spelt_otherwise(self, key: str, fid: int) -> bool:
        """As :meth:`.Client.spelt_otherwise`."""
        return await self._run(self._spelt_otherwise(key, fid))

    async def exact_file_info(self, key: str) -> FileInfo:
        """As :meth:`.Client.exact_file_info`."""
        return await self._run(self._exact_file_info(key))

    async def require_exact(self, key: str, fid: int, *, command: str = "file_info") -> None:
        """As :meth:`.Client.require_exact`."""
        await self._run(self._require_exact(key, fid, command=command))

    async def refuse_other_spelling(self, key: str) -> None:
        """As :meth:`.Client.refuse_other_spelling`."""
        await self._run(self._refuse_other_spelling(key))

    # Changing

    async def delete(self, key: str) -> None:
        """As :meth:`.Client.delete`."""
        await self._run(self._delete(key))

    async def rename(self, from_key: str, to_key: str) -> None:
        """As :meth:`.Client.rename`."""
        await self._run(self._rename(from_key, to_key))

    async def update_class(self, key: str, cls: str) -> None:
        """As :meth:`.Client.update_class`."""
        await self._run(self._update_class(key, cls))

    async def aclose(self) -> None:
        """Close the running event loop's tracker and storage-node connections;
        later calls open new ones."""
        await self.trackers.aclose()
        await self.nodes.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _run(self, operation: Operation[T]) -> T:
        """Run ``operation`` in the running event loop."""
        return await Asynchronous(self.trackers, self.nodes).run(operation)


class Asynchronous(Transport):
    """The asyncio transport of the operations (:mod:`.operations`): it
    performs their effects with an :class:`~.aio.AsyncTrackerPool` and
    :class:`~.aionodes.AsyncStorageNodes`."""

    trackers: AsyncTrackerPool
    nodes: AsyncStorageNodes

    async def run(self, operation: Operation[T]) -> T:
        """Await the effects of ``operation`` one after the other; its result."""
        stepper = Stepper(operation)
        while (effect := stepper.next()) is not None:
            await self._perform(stepper, effect)
        return stepper.result

    async def iterate(self, operation: Operation[None]) -> AsyncIterator[str]:
        """Perform the effects of ``operation``, yielding the keys it emits."""
        stepper = Stepper(operation)
        while (effect := stepper.next()) is not None:
            if isinstance(effect, Emit):
                yield effect.key
            else:
                await self._perform(stepper, effect)

    async def _perform(self, stepper: Stepper[Any], effect: Any) -> None:
        try:
            stepper.answer(await effect.via(self))
        except BaseException as exc:  # noqa: BLE001  the operation's, as an await raising it
            stepper.fail(exc)

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def order(self, urls: list[str]) -> list[str]:
        return self.nodes.order(urls)

    async def rest(self, url: str) -> None:
        self.nodes.rest(url)

    async def head(self, url: str, last: bool) -> NodeStat:
        return await self.nodes.head(url, last=last)

    async def upload(self, source: UploadSource, url: str, failover: bool) -> None:
        """PUT the source's chunks (read from its file in the event loop)."""
        await self.nodes.put(url, source.chunks(), source.length, failover=failover)

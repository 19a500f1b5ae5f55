"""The path cache read from an event loop: the cache's sync call against Django's ``aget_many``.

The async view reads the path cache (``PathCache.get``: one ``get_many``)
in the event loop. Django's cache backends have no async methods of their
own: ``aget_many`` runs ``get_many`` through ``sync_to_async``, in the
thread of the request's ``ThreadSensitiveContext`` (Django's ASGI handler
opens one per request, so a thread is started per request) or, outside
one, in asgiref's one shared thread. This times a warm lookup each way in
one loop, in alternating rounds, with a LocMemCache (no I/O: what is left
is the cost of the hop).

    .venv/bin/python bench/serve_path_cache.py [--lookups 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import django
from asgiref.sync import ThreadSensitiveContext
from django.conf import settings

KEYS = ["storages_mogile.paths.v3.x", "storages_mogile.damaged.v3.x"]


async def in_loop(cache) -> None:  # type: ignore[no-untyped-def]
    cache.get_many(KEYS)


async def per_request_thread(cache) -> None:  # type: ignore[no-untyped-def]
    async with ThreadSensitiveContext():  # as Django's ASGIHandler wraps each request
        await cache.aget_many(KEYS)


async def shared_thread(cache) -> None:  # type: ignore[no-untyped-def]
    await cache.aget_many(KEYS)


async def microseconds(lookup: Callable[..., Awaitable[None]], cache, count: int) -> float:  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    for _ in range(count):
        await lookup(cache)
    return (time.perf_counter() - began) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings.configure(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    )
    django.setup()
    from django.core.cache import caches

    cache = caches["default"]
    cache.set(KEYS[0], (["http://10.0.0.1:7500/dev1/0/000/000/0000000001.fid"], 4096, None, 1))
    ways = {
        "get_many in the loop": in_loop,
        "aget_many, per-request thread": per_request_thread,
        "aget_many, shared thread": shared_thread,
    }
    times: dict[str, list[float]] = {label: [] for label in ways}
    for _ in range(args.rounds):
        for label, lookup in ways.items():
            times[label].append(asyncio.run(microseconds(lookup, cache, args.lookups)))
    baseline = statistics.median(times["get_many in the loop"])
    print(f"path cache lookup (LocMemCache, warm), medians of {args.rounds} x {args.lookups}")
    for label, values in times.items():
        median = statistics.median(values)
        print(f"{label:32}{median:>9.1f} µs{median / baseline:>9.1f}x")


if __name__ == "__main__":
    main()

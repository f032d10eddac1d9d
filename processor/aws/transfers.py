"""Many S3 transfers at once: a job moves 20 photos in and 50 headshots out.

Why: one request at a time spends most of a job's I/O waiting on round trips; a bounded
number in flight (aioboto3 on the event loop) fills the pipe without opening a connection
per file. Each transfer keeps the storage edge's own retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from processor.aws.storage import ObjectStore

T = TypeVar("T")

#: Transfers in flight per job (S3 serves thousands per prefix; the NIC is the limit).
CONCURRENCY = 8


async def bounded(calls: Sequence[Callable[[], Awaitable[T]]], limit: int = CONCURRENCY) -> list[T]:
    """Run the calls with at most ``limit`` in flight; results in input order.

    The first error cancels the calls still running or waiting, and is raised once they have
    stopped: a failed upload (a lost lease, an outage) must not leave its siblings writing on."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()
    tasks = [asyncio.ensure_future(one(c)) for c in calls]
    if not tasks:
        return []
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:  # cancelled from outside: take the siblings down with us
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    if pending:
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    failed = next((t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None), None)
    if failed is not None:
        raise failed.exception()  # type: ignore[misc]
    return [t.result() for t in tasks]


async def download_many(store: ObjectStore, bucket: str, items: Sequence[tuple[str, Path]],
                        limit: int = CONCURRENCY) -> list[Path]:
    """``(key, local path)`` pairs downloaded concurrently."""
    return await bounded([lambda k=key, p=path: store.download_file(bucket, k, p) for key, path in items], limit)


async def upload_many(store: ObjectStore, bucket: str, items: Sequence[tuple[Path, str]],
                      content_type: Callable[[Path], str | None] = lambda p: None,
                      limit: int = CONCURRENCY) -> list[str]:
    """``(local path, key)`` pairs uploaded concurrently; returns the ETags."""
    return await bounded([lambda p=path, k=key: store.upload_file(bucket, k, p, content_type=content_type(p))
                          for path, key in items], limit)

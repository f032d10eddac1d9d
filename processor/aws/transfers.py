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
    """Run the calls with at most ``limit`` in flight; results in input order, first error raised."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()
    return list(await asyncio.gather(*(one(c) for c in calls)))


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

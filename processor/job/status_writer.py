"""status.json as one attempt at a job writes it: owned writes, stage timings, throttled progress.

Why: every write an attempt makes must first check that this worker still owns the job (a
worker presumed dead may still be running; it must not overwrite its successor), and progress
arrives from a stage's thread many times a second while S3 PUTs cost time and money. Both
rules live here, once, for every stage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import structlog

from processor import clock
from processor.errors import LostOwnership
from processor.job.fence import Fence
from processor.job.state import JobState, JobStatus, ProgressInfo
from processor.job.store import JobStore
from processor.stages import Progress

log = structlog.get_logger(__name__)

#: status.json is rewritten at most this often for progress.
PROGRESS_INTERVAL_S = 2.0


class StatusWriter:
    """The status.json writer of one attempt (one worker, one job, one lease)."""

    def __init__(self, jobs: JobStore, job_id: str, worker_id: str, logger: Any = None,
                 fence: Fence | None = None) -> None:
        self.jobs = jobs
        self.job_id = job_id
        self.worker_id = worker_id
        self.log = logger or log.bind(job_id=job_id)
        self.fence = fence
        self._started: dict[str, float] = {}

    async def update(self, change: Callable[[JobStatus], JobStatus]) -> JobStatus:
        """Apply ``change`` only under this attempt's lease (else :class:`LostOwnership`).

        The check is inside the compare-and-swap: the write lands only if status.json still
        names this worker and this lease's epoch when it is written.
        """
        if self.fence is not None:
            await self.fence.check()
        epoch = self.fence.epoch if self.fence is not None and self.fence.epoch else None

        def owned(status: JobStatus) -> JobStatus:
            if status.owner != self.worker_id or (epoch is not None and status.lease_epoch != epoch):
                raise LostOwnership(f"job {self.job_id} is held by another lease")
            return change(status)
        return (await self.jobs.update(self.job_id, owned))[0]

    async def enter(self, stage: str, state: JobState) -> None:
        """The stage starts: state, timing (``runs`` counts how often it was started)."""
        now = clock.now()
        self._started[stage] = time.perf_counter()
        self.log.info("stage_started", stage=stage, state=state.value)
        await self.update(lambda s: s.transition(state, now).start_stage(stage, now))

    async def leave(self, stage: str, extra: dict[str, Any] | None = None) -> None:
        """The stage finished; ``extra`` fields (e.g. ``validation``) are set on the status."""
        now = clock.now()
        seconds = time.perf_counter() - self._started.get(stage, time.perf_counter())
        self.log.info("stage_finished", stage=stage, seconds=round(seconds, 3))

        def change(s: JobStatus) -> JobStatus:
            s = s.finish_stage(stage, now).with_progress(None, now)
            return s.model_copy(update=extra) if extra else s
        await self.update(change)

    def progress_fn(self, stage: str) -> Callable[[Progress], None]:
        """A progress callback for a stage's thread: writes at most every few seconds, never waits."""
        loop = asyncio.get_running_loop()
        last = [0.0]

        def report(p: Progress) -> None:
            now = time.monotonic()
            if now - last[0] < PROGRESS_INTERVAL_S and p.step < p.total:
                return
            last[0] = now
            info = ProgressInfo(stage=p.stage or stage, step=max(0, p.step), total=max(0, p.total),
                                loss=p.loss)
            wall = clock.now()
            fut = asyncio.run_coroutine_threadsafe(self.update(lambda s: s.with_progress(info, wall)), loop)
            fut.add_done_callback(_log_progress_error)
        return report


def _log_progress_error(fut: Future[Any]) -> None:
    exc = fut.exception()
    if exc is not None and not isinstance(exc, LostOwnership):
        log.warning("progress_update_failed", error=type(exc).__name__)

"""The lease an attempt holds on its job while it runs, renewed by a conditional write.

Why a lease and not just an owner name: ownership that holds under any timing needs three
things. An epoch (bumped by every claim, :meth:`processor.job.state.JobStatus.claimed_by`), so
a renewal or release from an older attempt of the same worker is refused; renewals by
compare-and-swap on status.json (:meth:`processor.job.store.JobStore.heartbeat`), so two
workers never both renew; and a local deadline (:class:`~processor.job.fence.Fence`), so a
worker that cannot renew (paused, cut off) stops writing before anyone may take the job over.
The staleness that lets a rival take over is derived from the queue's timing
(:func:`processor.settings.default_stale_after`).
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType

import structlog

from processor import clock
from processor.aws.retry import describe
from processor.errors import LeaseEnded, LostOwnership
from processor.job.fence import Fence
from processor.job.store import JobStore
from processor.settings import Settings, owner_validity

log = structlog.get_logger(__name__)


class LeaseKeeper:
    """``async with LeaseKeeper(...) as fence:``: renews the lease every half heartbeat while the block runs.

    The fence closes when another lease is found on the job, and expires on its own when
    renewals stop succeeding; the attempt's writes and its stop check both read it.
    """

    def __init__(self, jobs: JobStore, settings: Settings, job_id: str, worker_id: str, epoch: int,
                 on_beat: object = None, started_at: float | None = None) -> None:
        """``started_at``: when the claim's request was sent (monotonic); the fence counts from it."""
        self.jobs = jobs
        self.job_id = job_id
        self.worker_id = worker_id
        self.epoch = epoch
        self.interval_s = settings.heartbeat_interval_s / 2  # two renewals per heartbeat: slack
        self.fence = Fence(job_id, epoch, owner_validity(settings.stale_after_s, settings.heartbeat_interval_s),
                           started_at=started_at)
        self._on_beat = on_beat
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Fence:
        self._task = asyncio.create_task(self._beat(), name=f"lease-{self.job_id}")
        return self.fence

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if callable(self._on_beat):
                self._on_beat()
            started = time.monotonic()
            try:
                await self.jobs.heartbeat(self.job_id, self.worker_id, clock.now(), epoch=self.epoch)
                self.fence.renewed(started)
            except LeaseEnded:  # the attempt's own terminal write landed first: nothing was lost
                log.debug("lease_ended", job_id=self.job_id, epoch=self.epoch)
                self.fence.close()
                return
            except LostOwnership:
                log.warning("ownership_lost", job_id=self.job_id, epoch=self.epoch)
                self.fence.close()
                return
            except Exception as exc:  # the next beat may get through; the fence expires if none does
                log.warning("owner_heartbeat_failed", job_id=self.job_id, error=describe(exc),
                            lease_left_s=round(self.fence.remaining_s() or 0.0, 1))

    async def renew_now(self) -> None:
        """Renew at once (after a slow claim, before a last write after a pause): raises
        LostOwnership if the lease is gone."""
        started = time.monotonic()
        try:
            await self.jobs.heartbeat(self.job_id, self.worker_id, clock.now(), epoch=self.epoch)
        except LostOwnership:
            self.fence.close()
            raise
        self.fence.renewed(started)

    async def release(self, crashed: bool = False) -> None:
        """Give the lease up now (hand-back; ``crashed``: after an exception), so the next worker
        need not wait for staleness. The fence closes first: nothing of this attempt's (a stage
        thread still finishing a step) can land after the next owner took the job."""
        self.fence.close()
        try:
            await self.jobs.release(self.job_id, self.worker_id, clock.now(), epoch=self.epoch, crashed=crashed)
        except Exception as exc:  # best effort: staleness takes over otherwise
            log.warning("release_job_failed", job_id=self.job_id, error=describe(exc))

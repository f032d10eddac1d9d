"""The dead-letter sweeper: no job ends silently in the dead-letter queue.

A message lands in the DLQ when its job crashed on every one of maxReceiveCount receives and
the last crash left no time to fail the job (a kill -9 on the final attempt), or when it was
never a job at all (poison). Either way the person would otherwise hear nothing. The sweeper
turns each dead-lettered job into a terminal ``failed`` status and one email, through the
same ``Pipeline.fail`` the worker uses; a poison message without a job is logged (never its
body: it may hold anything) and dropped.

Where it runs: in the worker, between jobs, at most every ``dlq_sweep_interval_s``. Why there
and not as a Lambda: it needs exactly the worker's pipeline (manifest, email templates, the
send-once marker, the lease) and the worker's IAM grants; the DLQ is tiny, so one receive per
interval on an idle worker costs nothing; and a fleet scaled to zero has no jobs to sweep
(a message only reaches the DLQ through a worker's receives).
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from processor.aws.queue import JobQueue, QueueMessage
from processor.aws.retry import describe
from processor.dispatch import MessageAction, plan_message
from processor.errors import LostOwnership
from processor.job.attempt import JobRun
from processor.job.lease import LeaseKeeper
from processor.job.store import ClaimOutcome, JobStore
from processor.settings import Settings

log = structlog.get_logger(__name__)

DLQ_REASON = "we could not finish your headshots after {crashes} tries"


class DeadLetterSweeper:
    """Sweeps ``settings.dlq_url``; ``maybe_sweep()`` is cheap to call between jobs."""

    def __init__(self, settings: Settings, jobs: JobStore, runner: Any, worker_id: str) -> None:
        self.settings = settings
        self.jobs = jobs
        self.runner = runner  # the worker's JobRunner: fail(JobRun, reason)
        self.worker_id = worker_id
        self._queue: JobQueue | None = None
        self._last = float("-inf")  # a new worker sweeps at its first idle moment, whatever its host's uptime

    async def close(self) -> None:
        if self._queue is not None:
            await self._queue.__aexit__(None, None, None)
            self._queue = None

    async def maybe_sweep(self) -> int:
        """Sweep when the interval has passed; returns how many messages were settled."""
        interval = self.settings.dlq_sweep_interval_s
        if interval <= 0 or time.monotonic() - self._last < interval:
            return 0
        self._last = time.monotonic()
        try:
            return await self.sweep()
        except Exception as exc:  # an outage here must not stop the worker serving jobs
            log.warning("dlq_sweep_failed", error=describe(exc))
            return 0

    async def sweep(self) -> int:
        """One pass over what the DLQ shows now."""
        if self._queue is None:
            self._queue = await JobQueue(self.settings, queue_url=self.settings.dlq_url).__aenter__()
        settled = 0
        while True:
            batch = await self._queue.receive(max_messages=10, wait_time_s=0,
                                              visibility_timeout_s=int(self.settings.stale_after_s))
            if not batch:
                return settled
            for message in batch:
                if await self._settle(message):
                    await self._queue.delete(message)
                    settled += 1

    async def _settle(self, message: QueueMessage) -> bool:
        """True when the message may be deleted: its jobs are terminal now, or it holds none."""
        plan = plan_message(message.body, self.settings.input_bucket)
        if plan.action is not MessageAction.RUN:
            log.warning("dlq_poison_dropped", message_id=message.message_id, reason=plan.reason)
            return True
        return all([await self._fail_job(job_id, message) for job_id in plan.job_ids])

    async def _fail_job(self, job_id: str, message: QueueMessage) -> bool:
        claim = await self.jobs.claim(job_id, self.worker_id, time.time(), message.origin, attempt=False)
        if claim.outcome is ClaimOutcome.FINISHED:
            return True
        if claim.outcome is ClaimOutcome.BUSY:
            log.info("dlq_job_still_owned", job_id=job_id)  # back in the DLQ: seen again when stale
            return False
        crashes = max(1, claim.status.attempts)  # its runs; the sweeper's claim is not one
        lease = LeaseKeeper(self.jobs, self.settings, job_id, self.worker_id, claim.status.lease_epoch)
        run = JobRun(job_id, self.worker_id, claim.status.attempts, True, lambda: lease.fence.lost,
                     lease.fence)
        try:
            async with lease:
                await self.runner.fail(run, DLQ_REASON.format(crashes=crashes))
        except LostOwnership:
            return False
        except Exception as exc:
            log.error("dlq_fail_failed", job_id=job_id, error=describe(exc), exc_info=exc)
            await lease.release()
            return False
        log.warning("job_dead_lettered", job_id=job_id, crashes=crashes)
        return True

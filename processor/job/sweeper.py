"""The dead-letter sweeper: no job ends silently in the dead-letter queue, and none ends early.

A message lands in the DLQ when its job crashed on every one of maxReceiveCount receives and
the last crash left no time to fail the job (a kill -9 on the final attempt), when it was never
a job at all (poison), or as a stray: a copy of a live job's message whose receives were spent
by something other than crashes (hidden again while its owner's lease lived, handed back after
a failed handling). The sweeper settles each by what status.json says, not by where the message
is (:func:`sweep_decision`): it fails a job, with one email, only when its lease is stale by the
lease rule (unchanged on S3's clock for the staleness) *and* its crash budget is spent; a job
whose budget is left goes back to the job queue as a fresh message; a job a live worker holds is
left for the next sweep; a finished job's message is dropped. Poison is logged (never its body:
it may hold anything) and dropped.

Where it runs: in the worker, between jobs, at most every ``dlq_sweep_interval_s``. Why there
and not as a Lambda: it needs exactly the worker's pipeline (manifest, email templates, the
send-once marker, the lease) and the worker's IAM grants; the DLQ is tiny, so one receive per
interval on an idle worker costs nothing; and a fleet scaled to zero has no jobs to sweep
(a message only reaches the DLQ through a worker's receives).
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

import structlog

from processor import clock
from processor.aws.queue import JobQueue, QueueMessage
from processor.aws.retry import describe
from processor.dispatch import MessageAction, plan_message
from processor.errors import LostOwnership
from processor.failpoints import Failpoints
from processor.job.attempt import JobRun
from processor.job.lease import LeaseKeeper
from processor.job.state import JobStatus
from processor.job.store import ClaimOutcome, JobStore, StatusRead, lease_is_stale
from processor.settings import Settings

log = structlog.get_logger(__name__)

DLQ_REASON = "we could not finish your headshots after {crashes} tries"


class SweepDecision(StrEnum):
    DROP = "drop"            # the job is over (or there is none): delete the message
    FAIL = "fail"            # stale and out of budget: end it failed, with its email
    HAND_BACK = "hand_back"  # budget left (or released): a fresh copy goes to the job queue
    LEAVE = "leave"          # a live worker holds it: look again at the next sweep


def sweep_decision(found: StatusRead | None, stale_after_s: float, max_receive_count: int) -> SweepDecision:
    """What a dead-lettered message means for its job (pure).

    - no status: its receives were all spent before any claim landed: it is over budget;
    - terminal: nothing to do;
    - a live lease: leave it (its owner settles it; it may itself be the owner's message);
    - a stale lease: the silent owner's attempt died, which spends one more crash; fail the job
      if that spends the budget, else hand it back to be taken over;
    - no owner (released, e.g. after SIGTERM): fail it only if the budget is already spent.
    """
    if found is None:
        return SweepDecision.FAIL
    status: JobStatus = found.status
    if status.is_terminal:
        return SweepDecision.DROP
    if status.owner is not None:
        if not lease_is_stale(found.age_s, stale_after_s):
            return SweepDecision.LEAVE
        return SweepDecision.FAIL if status.crashes + 1 >= max_receive_count else SweepDecision.HAND_BACK
    return SweepDecision.FAIL if status.crashes >= max_receive_count else SweepDecision.HAND_BACK


class DeadLetterSweeper:
    """Sweeps ``settings.dlq_url``; ``maybe_sweep()`` is cheap to call between jobs."""

    def __init__(self, settings: Settings, jobs: JobStore, runner: Any, worker_id: str,
                 failpoints: Failpoints | None = None) -> None:
        self.settings = settings
        self.jobs = jobs
        self.runner = runner  # the worker's JobRunner: fail(JobRun, reason), cleanup(job_id)
        self.worker_id = worker_id
        self.failpoints = failpoints or Failpoints(settings.failpoints)
        self._queue: JobQueue | None = None
        self._jobs_queue: JobQueue | None = None
        self._last = float("-inf")  # a new worker sweeps at its first idle moment, whatever its host's uptime

    async def close(self) -> None:
        for queue in (self._queue, self._jobs_queue):
            if queue is not None:
                await queue.__aexit__(None, None, None)
        self._queue = self._jobs_queue = None

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
        """True when the message may be deleted: its jobs are settled or handed back, or it holds none."""
        plan = plan_message(message.body, self.settings.input_bucket)
        if plan.action is not MessageAction.RUN:
            log.warning("dlq_poison_dropped", message_id=message.message_id, reason=plan.reason)
            return True
        outcomes = [await self._settle_job(job_id, message) for job_id in plan.job_ids]
        if SweepDecision.LEAVE in outcomes:
            return False
        if SweepDecision.HAND_BACK in outcomes:
            await self._hand_back(message)
            self.failpoints.hit("dlq.handed_back")  # a copy sent, this message not yet deleted
        return True

    async def _hand_back(self, message: QueueMessage) -> None:
        if self._jobs_queue is None:
            self._jobs_queue = await JobQueue(self.settings).__aenter__()
        new_id = await self._jobs_queue.send(message.body)
        log.warning("dlq_job_handed_back", message_id=message.message_id, new_message_id=new_id)

    async def _settle_job(self, job_id: str, message: QueueMessage) -> SweepDecision:
        found = await self.jobs.read(job_id)
        decision = sweep_decision(found, self.settings.stale_after_s, self.settings.max_receive_count)
        log.info("dlq_job_seen", job_id=job_id, decision=decision.value,
                 crashes=found.status.crashes if found else None)
        if decision is SweepDecision.DROP:
            await self.runner.cleanup(job_id)
        if decision is not SweepDecision.FAIL:
            return decision
        return SweepDecision.DROP if await self._fail_job(job_id, message) else SweepDecision.LEAVE

    async def _fail_job(self, job_id: str, message: QueueMessage) -> bool:
        claim_sent = time.monotonic()
        claim = await self.jobs.claim(job_id, self.worker_id, clock.now(), message.message_id, attempt=False)
        if claim.outcome is ClaimOutcome.FINISHED:
            return True
        if claim.outcome is ClaimOutcome.BUSY:
            return False  # someone renewed or claimed it meanwhile: seen again next sweep
        self.failpoints.hit("sweep.claimed")
        crashes = max(1, claim.status.attempts)  # its runs; the sweeper's claim is not one
        lease = LeaseKeeper(self.jobs, self.settings, job_id, self.worker_id, claim.status.lease_epoch,
                            started_at=claim_sent)
        run = JobRun(job_id, self.worker_id, claim.status.attempts, True, lambda: lease.fence.lost,
                     lease.fence)
        try:
            await lease.renew_now()
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

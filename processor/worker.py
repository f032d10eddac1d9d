"""The queue worker: long-poll SQS, one job at a time, and keep the delivery promises.

What each message means is decided by pure functions (:mod:`processor.dispatch`); the
:class:`Worker` carries those decisions out against SQS and ``status.json``. The promises
(DESIGN.md, "Delivery semantics"; docs/delivery.md): a finished job's duplicate is
acknowledged with no work; a duplicate of a job a live worker runs is deleted once seen, while
that worker's own message is never deleted before its job ends (it is hidden again until the
lease would be stale); a malformed message reaches the dead-letter queue; the message stays
invisible and the job's lease renewed while it runs; on SIGTERM the worker stops polling, lets
the stage stop at its next atomic step, closes its fence, releases the lease and puts the job
back as a fresh message within the grace period; maxReceiveCount crashes (counted in
status.json) end the job as failed, with its email. No exception from one job, and no SQS
outage, ends the process: only bad settings or SIGTERM do. Between jobs an idle worker sweeps
the dead-letter queue (:mod:`processor.job.sweeper`). On ECS the task holds its scale-in
protection for each attempt.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import structlog

from processor import clock
from processor.aws.queue import JobQueue, QueueMessage
from processor.aws.retry import describe
from processor.aws.storage import ObjectStore
from processor.aws.task_protection import ScaleInProtection, scale_in_protection
from processor.aws.secrets import check_link_key
from processor.dispatch import (
    MessageAction,
    backoff_s,
    busy_action,
    is_final_attempt,
    over_budget,
    overdue_reason,
    plan_message,
    receive_backoff_s,
)
from processor.errors import LostOwnership, MessageLost, SettingsError
from processor.failpoints import Failpoints
from processor.job.attempt import JobResult, JobRun
from processor.job.lease import LeaseKeeper
from processor.job.store import Claim, ClaimOutcome, JobStore
from processor.job.sweeper import DeadLetterSweeper
from processor.pipeline import Pipeline
from processor.settings import Settings, worker_problems

log = structlog.get_logger(__name__)


class Settled(StrEnum):
    """What handling a message did with it (the worker's disposition of one message)."""

    DELETE = "delete"      # done with: delete the message
    RELEASED = "released"  # handed back, re-enqueued or left to its owner: do not delete


class JobRunner(Protocol):
    """The pipeline as the worker sees it (``processor.pipeline.Pipeline`` implements it)."""

    async def run(self, job: JobRun) -> JobResult: ...

    async def fail(self, job: JobRun, reason: str) -> None: ...

    async def cleanup(self, job_id: str) -> None: ...


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def clear_stale_job_folders(work_dir: Path) -> int:
    """Remove what earlier processes on this disk left in the work folder (killed mid-job)."""
    if not work_dir.exists():
        return 0
    removed = 0
    for child in work_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
        removed += 1
    return removed


class Worker:
    """One job at a time from ``queue``; ``request_stop()`` (SIGTERM) ends the loop cleanly."""

    def __init__(self, settings: Settings, queue: JobQueue, jobs: JobStore, runner: JobRunner,
                 worker_id: str | None = None, protection: ScaleInProtection | None = None,
                 sweeper: DeadLetterSweeper | None = None, failpoints: Failpoints | None = None) -> None:
        self.settings = settings
        self.queue = queue
        self.jobs = jobs
        self.runner = runner
        self.worker_id = worker_id or new_worker_id()
        # Held while an attempt runs; off ECS (the default) it does nothing.
        self.protection = protection or ScaleInProtection.disabled()
        self.sweeper = sweeper
        self.failpoints = failpoints or Failpoints(settings.failpoints)
        self.jobs_finished = 0
        self._stopping = asyncio.Event()
        self._job_stop = threading.Event()
        self._current: tuple[QueueMessage, LeaseKeeper] | None = None

    # --- control ---------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def current_job(self) -> str | None:
        return self._current[1].job_id if self._current else None

    def request_stop(self) -> None:
        """Stop polling; the running stage stops at its next atomic step (SIGTERM)."""
        if not self._stopping.is_set():
            log.info("worker_stop_requested", worker=self.worker_id, job_id=self.current_job)
        self._stopping.set()
        self._job_stop.set()

    def touch_health(self) -> None:
        path = self.settings.health_file
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            os.utime(path)
        except OSError as exc:
            log.warning("health_file_unwritable", error=type(exc).__name__)

    async def release_current(self) -> None:
        """Hand the in-flight job back now (the grace period ran out): the fence closes first, so
        a stage thread still running can write nothing once the lease is released."""
        if self._current is None:
            return
        message, lease = self._current
        lease.fence.close()
        await self._hand_back(message, lease)
        await self.protection.release(lease.job_id)

    # --- the loop --------------------------------------------------------------------
    async def run(self, max_jobs: int | None = None, idle_exit_s: float | None = None) -> int:
        """Serve until stopped (or ``max_jobs`` jobs, or ``idle_exit_s`` without messages)."""
        cleared = clear_stale_job_folders(self.settings.work_dir)
        log.info("worker_started", worker=self.worker_id, queue=self.queue.queue_url, stale_folders=cleared)
        idle_since = time.monotonic()
        failures = 0
        while not self.stopping:
            self.touch_health()
            if max_jobs is not None and self.jobs_finished >= max_jobs:
                break
            if idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                log.info("worker_idle_exit", worker=self.worker_id)
                break
            messages = await self._receive()
            if messages is None:  # SQS trouble: back off, stay alive, stay healthy
                failures += 1
                await self._pause(receive_backoff_s(failures))
                continue
            failures = 0
            for message in messages:
                await self.handle(message)
            if messages:
                idle_since = time.monotonic()
            elif self.sweeper is not None and not self.stopping:
                await self.sweeper.maybe_sweep()
        log.info("worker_stopped", worker=self.worker_id, jobs=self.jobs_finished)
        return 0

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` (a receive backoff), touching the health file, ending early on stop."""
        deadline = time.monotonic() + seconds
        while not self.stopping and (left := deadline - time.monotonic()) > 0:
            self.touch_health()
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=min(1.0, left))
            except TimeoutError:
                pass

    async def _receive(self) -> list[QueueMessage] | None:
        """Long-poll, abandoned at once when a stop is requested; None when SQS failed."""
        receive = asyncio.create_task(self.queue.receive(max_messages=1))
        stop = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait({receive, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if receive not in done:
            receive.cancel()
            try:
                await receive
            except (asyncio.CancelledError, Exception):
                pass
            return []
        try:
            return receive.result()
        except Exception as exc:
            log.warning("receive_failed", error=describe(exc))
            return None

    async def handle(self, message: QueueMessage) -> None:
        """Carry out the plan for one message; nothing raised here ends the worker."""
        try:
            await self._handle(message)
        except Exception as exc:
            # A bug or an outage outside any job's attempt (e.g. claiming): the message comes
            # back after a backoff, and the worker serves the next one.
            log.error("message_handling_failed", message_id=message.message_id, error=describe(exc),
                      exc_info=exc)
            await self._release(message, backoff_s(message.receive_count, self.settings))

    async def _handle(self, message: QueueMessage) -> None:
        plan = plan_message(message.body, self.settings.input_bucket)
        mlog = log.bind(message_id=message.message_id, receive_count=message.receive_count)
        if plan.action is MessageAction.ACK:
            mlog.info("message_ignored", reason=plan.reason)
            await self._delete(message)
            return
        if plan.action is MessageAction.DEAD_LETTER:
            # Visible again at once: it reaches the DLQ after maxReceiveCount quick receives,
            # where the sweeper logs and drops it.
            mlog.warning("message_rejected", reason=plan.reason,
                         to_dlq=message.receive_count >= self.settings.max_receive_count)
            await self._release(message, 0)
            return
        for job_id in plan.job_ids:
            if self.stopping:
                await self._release(message, 0)
                return
            if await self._handle_job(message, job_id) is Settled.RELEASED:
                return
        await self._delete(message)

    async def _handle_job(self, message: QueueMessage, job_id: str) -> Settled:
        """Run one job of the message; say whether the message may be deleted for it."""
        jlog = log.bind(job_id=job_id, message_id=message.message_id, receive_count=message.receive_count)
        claim_sent = time.monotonic()  # the lease's validity counts from here, not from the answer
        claim: Claim = await self.jobs.claim(job_id, self.worker_id, clock.now(), message.message_id)
        if claim.outcome is ClaimOutcome.FINISHED:
            jlog.info("duplicate_for_finished_job", state=claim.status.state.value)
            await self.runner.cleanup(job_id)  # a late manifest or photos: nothing may stay
            return Settled.DELETE
        if claim.outcome is ClaimOutcome.BUSY:
            left = self.settings.stale_after_s - (claim.age_s or 0.0)
            action = busy_action(claim.status.owner_message, message.message_id, left)
            if action.delete:
                jlog.info("duplicate_deleted", owner=claim.status.owner)
                return Settled.DELETE  # the owner's own message carries the job
            jlog.info("owners_message_hidden", hidden_s=action.delay_s,
                      lease_unchanged_s=round(claim.age_s or 0.0, 1))
            await self._release(message, action.delay_s)
            return Settled.RELEASED
        status = claim.status
        deadline = status.created_at + self.settings.max_job_duration_s
        lease = LeaseKeeper(self.jobs, self.settings, job_id, self.worker_id, status.lease_epoch,
                            on_beat=self.touch_health, started_at=claim_sent)
        if lease.fence.expired:  # the claim took longer than the lease's validity: renew first
            jlog.warning("slow_claim", seconds=round(time.monotonic() - claim_sent, 1))
            try:
                await lease.renew_now()
            except LostOwnership:
                jlog.warning("job_lost_while_claiming")
                return Settled.DELETE  # another lease holds it, with its own message
        crashes = status.crashes
        job = JobRun(job_id=job_id, worker_id=self.worker_id, attempt=status.attempts,
                     final_attempt=is_final_attempt(crashes, self.settings.max_receive_count),
                     should_stop=self._job_stop.is_set, fence=lease.fence, deadline=deadline)
        jlog.info("job_claimed", outcome=claim.outcome.value, attempt=job.attempt, epoch=status.lease_epoch,
                  crashes=crashes, final_attempt=job.final_attempt)
        if over_budget(crashes, self.settings.max_receive_count):
            return await self._fail(message, job, lease, crashes, _crashed_reason(crashes))
        if job.overdue:
            return await self._fail(message, job, lease, crashes, overdue_reason(self.settings))
        self._current = (message, lease)
        try:
            # Protected from scale-in until this attempt has been handled, however it ends.
            async with self.protection.held(job_id):
                return await self._attempt(message, job, lease, crashes)
        finally:
            self._current = None

    async def _attempt(self, message: QueueMessage, job: JobRun, lease: LeaseKeeper, crashes: int) -> Settled:
        """One claimed attempt: run it, then carry out what its result means for the message."""
        jlog = log.bind(job_id=job.job_id, message_id=message.message_id)
        job_stop = self._job_stop

        def should_stop() -> bool:
            return job_stop.is_set() or lease.fence.lost or job.overdue

        run = JobRun(job.job_id, job.worker_id, job.attempt, job.final_attempt, should_stop,
                     lease.fence, job.deadline)
        try:
            async with self.queue.heartbeat(message), lease:
                result = await self.runner.run(run)
        except Exception as exc:
            crashes += 1
            log.error("job_crashed", job_id=job.job_id, error=describe(exc), crashes=crashes, exc_info=exc)
            if over_budget(crashes, self.settings.max_receive_count):
                return await self._fail(message, job, lease, crashes, _crashed_reason(crashes), crashed=True)
            await lease.release(crashed=True)
            await self._release(message, backoff_s(crashes, self.settings))
            return Settled.RELEASED
        if result is JobResult.TERMINAL:
            self.jobs_finished += 1
            return Settled.DELETE
        if result is JobResult.LOST or lease.fence.lost:
            # Another lease holds the job: its holder settles the job and its own message; this
            # one comes back after its visibility and is deleted then as a duplicate.
            jlog.warning("job_lost_to_other_worker")
            return Settled.RELEASED
        jlog.info("job_interrupted_requeued")
        await self._hand_back(message, lease)
        return Settled.RELEASED

    async def _hand_back(self, message: QueueMessage, lease: LeaseKeeper) -> None:
        """SIGTERM: fence closed, lease released, then a fresh copy of the message (no crash spent)."""
        await lease.release()
        self.failpoints.hit("lease.released")
        await self._requeue(message)

    async def _fail(self, message: QueueMessage, job: JobRun, held: LeaseKeeper, crashes: int,
                    reason: str, crashed: bool = False) -> Settled:
        """End the job as failed (one email). If even that fails, the message comes back later
        (``crashed``: the crash that spent the budget is counted, so the sweeper sees it spent)."""
        lease = LeaseKeeper(self.jobs, self.settings, job.job_id, self.worker_id, held.epoch)
        run = JobRun(job.job_id, job.worker_id, job.attempt, True, lambda: lease.fence.lost,
                     lease.fence, job.deadline)
        try:
            await lease.renew_now()
        except LostOwnership:
            log.warning("job_lost_before_failing", job_id=job.job_id)
            return Settled.RELEASED  # another lease holds the job: its holder settles it
        try:
            async with lease:
                await self.runner.fail(run, reason)
        except Exception as exc:
            log.error("job_fail_failed", job_id=job.job_id, error=describe(exc), exc_info=exc)
            await lease.release(crashed=crashed)
            await self._release(message, backoff_s(crashes, self.settings))
            return Settled.RELEASED
        self.jobs_finished += 1
        return Settled.DELETE

    # --- SQS: nothing here raises (an outage must not end the worker) ------------------
    async def _delete(self, message: QueueMessage) -> None:
        """A message that outlives a failed delete comes back: a finished job's is acknowledged
        then, a duplicate deleted then."""
        try:
            await self.queue.delete(message)
        except MessageLost:
            log.warning("delete_lost_message", message_id=message.message_id)
        except Exception as exc:
            log.warning("delete_failed", message_id=message.message_id, error=describe(exc))

    async def _release(self, message: QueueMessage, delay_s: int) -> None:
        """Visible again after ``delay_s``; if SQS refuses, its visibility timeout does the same."""
        try:
            await self.queue.release(message, delay_s)
        except MessageLost:
            log.warning("release_lost_message", message_id=message.message_id)
        except Exception as exc:
            log.warning("release_failed", message_id=message.message_id, error=describe(exc))

    async def _requeue(self, message: QueueMessage) -> None:
        """A fresh copy of the message; the same message handed back only if no copy was sent."""
        try:
            await self.queue.requeue(message, 0, between=lambda: self.failpoints.hit("requeue.sent"))
        except Exception as exc:
            log.warning("requeue_failed", message_id=message.message_id, error=describe(exc))
            await self._release(message, 0)


def _crashed_reason(crashes: int) -> str:
    return f"internal error after {crashes} attempts"


async def require_worker_settings(settings: Settings) -> None:
    """Raise :class:`SettingsError` naming what a worker cannot end a job without: the settings
    (:func:`processor.settings.worker_problems`), then the link key, read once."""
    problems = worker_problems(settings)
    if problems:
        raise SettingsError("the worker cannot end a job with these settings:\n  " + "\n  ".join(problems))
    await check_link_key(settings)


async def serve(settings: Settings, *, max_jobs: int | None = None, idle_exit_s: float | None = None,
                install_signals: bool = True) -> int:
    """Check what every job needs, open the AWS edges, build the pipeline and run a
    :class:`Worker` until it stops. A worker that could not end a job (no front door to link
    to, no link key it can read) refuses to start: :class:`SettingsError`, before any GPU work."""
    import signal

    await require_worker_settings(settings)
    async with (ObjectStore(settings) as store, JobQueue(settings) as queue,
               scale_in_protection(settings) as protection):
        jobs = JobStore(store, settings.output_bucket, settings.stale_after_s)
        failpoints = Failpoints(settings.failpoints)
        pipeline = Pipeline(settings, store, jobs, failpoints=failpoints)
        worker_id = new_worker_id()
        sweeper = DeadLetterSweeper(settings, jobs, pipeline, worker_id, failpoints) if settings.dlq_url else None
        worker = Worker(settings, queue, jobs, pipeline, worker_id=worker_id, protection=protection,
                        sweeper=sweeper, failpoints=failpoints)
        loop = asyncio.get_running_loop()
        watchdog: list[asyncio.Task[None]] = []

        async def grace_expired() -> None:
            await asyncio.sleep(max(1.0, settings.shutdown_grace_s - 5.0))
            log.error("shutdown_grace_expired", job_id=worker.current_job)
            await worker.release_current()
            os._exit(0)

        def on_term() -> None:
            worker.request_stop()
            if not watchdog:
                watchdog.append(loop.create_task(grace_expired()))

        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, on_term)
        try:
            return await worker.run(max_jobs=max_jobs, idle_exit_s=idle_exit_s)
        finally:
            if sweeper is not None:
                await sweeper.close()
            for task in watchdog:
                task.cancel()
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)

"""The queue worker: long-poll SQS, one job at a time, and keep the delivery promises.

What each message means is decided by pure functions (:mod:`processor.dispatch`); the
:class:`Worker` only carries those decisions out against SQS and ``status.json``. The promises (DESIGN.md, "Delivery semantics"): a
finished job's duplicate is acknowledged with no work; a running job's duplicate goes back
with a delay; a malformed message is never deleted, so it reaches the dead-letter queue; the
message stays invisible while its job runs; on SIGTERM the worker stops polling, lets the
stage stop at its next atomic step, and hands the message back within the grace period. On ECS
the task holds its scale-in protection for each attempt at a job (:mod:`processor.aws.task_protection`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from enum import StrEnum
from typing import Protocol

import structlog

from processor.aws.queue import JobQueue, QueueMessage
from processor.aws.retry import describe
from processor.aws.storage import ObjectStore
from processor.aws.task_protection import ScaleInProtection, scale_in_protection
from processor.dispatch import (
    MessageAction,
    busy_action,
    crash_action,
    is_final_attempt,
    plan_message,
)
from processor.errors import LostOwnership, MessageLost
from processor.job.attempt import JobResult, JobRun
from processor.job.fence import Fence
from processor.job.store import Claim, ClaimOutcome, JobStore
from processor.pipeline import Pipeline
from processor.settings import Settings

log = structlog.get_logger(__name__)


class Settled(StrEnum):
    """What handling a message did with it (the worker's disposition of one message)."""

    DELETE = "delete"      # done with: delete the message
    RELEASED = "released"  # handed back (visible again now or after a delay): do not delete


class JobRunner(Protocol):
    """The pipeline as the worker sees it (``processor.pipeline.Pipeline`` implements it)."""

    async def run(self, job: JobRun) -> JobResult: ...

    async def fail(self, job: JobRun, reason: str) -> None: ...


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    """One job at a time from ``queue``; ``request_stop()`` (SIGTERM) ends the loop cleanly."""

    def __init__(self, settings: Settings, queue: JobQueue, jobs: JobStore, runner: JobRunner,
                 worker_id: str | None = None, protection: ScaleInProtection | None = None) -> None:
        self.settings = settings
        self.queue = queue
        self.jobs = jobs
        self.runner = runner
        self.worker_id = worker_id or new_worker_id()
        # Held while an attempt runs; off ECS (the default) it does nothing.
        self.protection = protection or ScaleInProtection.disabled()
        self.jobs_finished = 0
        self._stopping = asyncio.Event()
        self._job_stop = threading.Event()
        self._current: QueueMessage | None = None
        self._current_job: str | None = None

    # --- control ---------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def request_stop(self) -> None:
        """Stop polling; the running stage stops at its next atomic step (SIGTERM)."""
        if not self._stopping.is_set():
            log.info("worker_stop_requested", worker=self.worker_id, job_id=self._current_job)
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
        """Hand the in-flight message and job back now (the grace period ran out)."""
        message, job_id = self._current, self._current_job
        if job_id is not None:
            try:
                await self.jobs.release(job_id, self.worker_id, time.time())
            except Exception as exc:  # best effort: staleness takes over otherwise
                log.warning("release_job_failed", job_id=job_id, error=describe(exc))
        if message is not None:
            await self._release(message, 0)
        if job_id is not None:
            await self.protection.release(job_id)

    # --- the loop --------------------------------------------------------------------
    async def run(self, max_jobs: int | None = None, idle_exit_s: float | None = None) -> int:
        """Serve until stopped (or ``max_jobs`` jobs, or ``idle_exit_s`` without messages)."""
        log.info("worker_started", worker=self.worker_id, queue=self.queue.queue_url)
        idle_since = time.monotonic()
        while not self.stopping:
            self.touch_health()
            if max_jobs is not None and self.jobs_finished >= max_jobs:
                break
            if idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                log.info("worker_idle_exit", worker=self.worker_id)
                break
            messages = await self._receive()
            for message in messages:
                await self.handle(message)
            if messages:
                idle_since = time.monotonic()
        log.info("worker_stopped", worker=self.worker_id, jobs=self.jobs_finished)
        return 0

    async def _receive(self) -> list[QueueMessage]:
        """Long-poll, abandoned at once when a stop is requested."""
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
            await asyncio.sleep(1.0)
            return []

    async def handle(self, message: QueueMessage) -> None:
        """Carry out the plan for one message."""
        plan = plan_message(message.body, self.settings.input_bucket)
        mlog = log.bind(message_id=message.message_id, receive_count=message.receive_count)
        if plan.action is MessageAction.ACK:
            mlog.info("message_ignored", reason=plan.reason)
            await self._delete(message)
            return
        if plan.action is MessageAction.DEAD_LETTER:
            # Visible again at once: it reaches the DLQ after maxReceiveCount quick receives.
            mlog.warning("message_rejected", reason=plan.reason,
                         to_dlq=is_final_attempt(message.receive_count, self.settings.max_receive_count))
            await self._release(message, 0)
            return
        for job_id in plan.job_ids:
            if self.stopping:
                await self._release(message, 0)
                return
            if await self._handle_job(message, job_id) is Settled.RELEASED:
                return  # the message was handed back already
        await self._delete(message)

    async def _handle_job(self, message: QueueMessage, job_id: str) -> Settled:
        """Run one job of the message; say whether the message may be deleted for it."""
        jlog = log.bind(job_id=job_id, message_id=message.message_id, receive_count=message.receive_count)
        claim: Claim = await self.jobs.claim(job_id, self.worker_id, time.time())
        if claim.outcome is ClaimOutcome.FINISHED:
            jlog.info("duplicate_for_finished_job", state=claim.status.state.value)
            return Settled.DELETE
        if claim.outcome is ClaimOutcome.BUSY:
            action = busy_action(message.receive_count, self.settings)
            jlog.info("job_owned_elsewhere", delay_s=action.delay_s, dropped=action.delete)
            if not action.delete:
                await self._release(message, action.delay_s)
                return Settled.RELEASED
            return Settled.DELETE
        final = is_final_attempt(message.receive_count, self.settings.max_receive_count)
        job = JobRun(job_id=job_id, worker_id=self.worker_id, attempt=claim.status.attempts,
                     final_attempt=final, should_stop=self._job_stop.is_set)
        jlog.info("job_claimed", outcome=claim.outcome.value, attempt=job.attempt, final_attempt=final)
        self._current, self._current_job = message, job_id
        # Protected from scale-in from here until this attempt has been handled, however it
        # ends (done, handed back on SIGTERM, lost to another worker, crashed).
        async with self.protection.held(job_id):
            return await self._attempt(message, job)

    async def _attempt(self, message: QueueMessage, job: JobRun) -> Settled:
        """One claimed attempt: run it, then carry out what its result means for the message."""
        job_id = job.job_id
        jlog = log.bind(job_id=job_id, message_id=message.message_id, receive_count=message.receive_count)
        try:
            result = await self._run_with_heartbeats(message, job)
        except Exception as exc:
            return await self._after_crash(message, job, exc)
        finally:
            self._current, self._current_job = None, None
        if result is JobResult.TERMINAL:
            self.jobs_finished += 1
            return Settled.DELETE
        if result is JobResult.LOST:
            jlog.warning("job_lost_to_other_worker")
            return Settled.RELEASED
        jlog.info("job_interrupted_releasing")
        try:
            await self.jobs.release(job_id, self.worker_id, time.time())
        finally:
            await self._release(message, 0)
        return Settled.RELEASED

    async def _after_crash(self, message: QueueMessage, job: JobRun, exc: Exception) -> Settled:
        """Last attempt: mark failed (one email). Otherwise: hand back with a backoff delay."""
        action = crash_action(message.receive_count, self.settings)
        log.error("job_crashed", job_id=job.job_id, error=describe(exc), final_attempt=action.delete,
                  exc_info=exc)
        if action.delete:
            await self.runner.fail(job, f"internal error after {message.receive_count} attempts")
            self.jobs_finished += 1
            return Settled.DELETE
        try:
            await self.jobs.release(job.job_id, self.worker_id, time.time())
        except Exception as release_exc:
            log.warning("release_job_failed", job_id=job.job_id, error=describe(release_exc))
        await self._release(message, action.delay_s)
        return Settled.RELEASED

    async def _run_with_heartbeats(self, message: QueueMessage, job: JobRun) -> JobResult:
        """The pipeline, with the visibility and ownership heartbeats running beside it."""
        fence = Fence(job.job_id)  # closed by the ownership heartbeat when the job is taken over
        job_stop = self._job_stop

        def should_stop() -> bool:
            return job_stop.is_set() or fence.lost

        async def owner_beat() -> None:
            while True:
                await asyncio.sleep(self.settings.heartbeat_interval_s)
                self.touch_health()
                try:
                    await self.jobs.heartbeat(job.job_id, self.worker_id, time.time())
                except LostOwnership:
                    log.warning("ownership_lost", job_id=job.job_id)
                    fence.close()
                    return
                except Exception as exc:
                    log.warning("owner_heartbeat_failed", job_id=job.job_id, error=describe(exc))

        run = JobRun(job.job_id, job.worker_id, job.attempt, job.final_attempt, should_stop, fence)
        beat = asyncio.create_task(owner_beat(), name=f"owner-{job.job_id}")
        try:
            async with self.queue.heartbeat(message) as hb:
                result = await self.runner.run(run)
                if hb.lost and result is not JobResult.TERMINAL:
                    return JobResult.LOST
        finally:
            beat.cancel()
            try:
                await beat
            except asyncio.CancelledError:
                pass
        if fence.lost and result is not JobResult.TERMINAL:
            return JobResult.LOST
        return result

    async def _delete(self, message: QueueMessage) -> None:
        try:
            await self.queue.delete(message)
        except MessageLost:
            log.warning("delete_lost_message", message_id=message.message_id)

    async def _release(self, message: QueueMessage, delay_s: int) -> None:
        try:
            await self.queue.release(message, delay_s)
        except MessageLost:
            log.warning("release_lost_message", message_id=message.message_id)



async def serve(settings: Settings, *, max_jobs: int | None = None, idle_exit_s: float | None = None,
                install_signals: bool = True) -> int:
    """Open the AWS edges, build the pipeline and run a :class:`Worker` until it stops."""
    import signal

    async with (ObjectStore(settings) as store, JobQueue(settings) as queue,
               scale_in_protection(settings) as protection):
        jobs = JobStore(store, settings.output_bucket, settings.owner_stale_after_s)
        worker = Worker(settings, queue, jobs, Pipeline(settings, store, jobs), protection=protection)
        loop = asyncio.get_running_loop()
        watchdog: list[asyncio.Task[None]] = []

        async def grace_expired() -> None:
            await asyncio.sleep(max(1.0, settings.shutdown_grace_s - 5.0))
            log.error("shutdown_grace_expired", job_id=worker._current_job)
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
            for task in watchdog:
                task.cancel()
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)

"""The queue worker against the local stack (moto over HTTP, the real pipeline on the tiny
model): what it does with each kind of message. The pure decisions: tests/processor/test_dispatch.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from processor.aws.queue import JobQueue
from processor.aws.storage import ObjectStore
from processor.devkit.local_stack import LocalStack
from processor.dispatch import busy_action, health_max_age_s, is_healthy
from processor.job.state import JobState, JobStatus
from processor.job.store import JobStore
from processor.settings import Settings
from processor.worker import serve
from tests.integration.harness import (
    REPO_ROOT,
    dlq_count,
    emails_for,
    job_status,
    keys,
    queue_counts,
    s3_event_body,
    send_raw,
    submit,
    text_body,
)

# --- against the local stack ----------------------------------------------------------------


async def _status(settings: Settings, job_id: str, status: JobStatus) -> None:
    async with ObjectStore(settings) as store:
        await JobStore(store, settings.output_bucket, settings.owner_stale_after_s).create(status)


def _delivered(job_id: str) -> JobStatus:
    now = time.time()
    s = JobStatus.new(job_id, now)
    for state in (JobState.VALIDATING, JobState.TRAINING, JobState.GENERATING, JobState.DELIVERING,
                  JobState.DELIVERED):
        s = s.transition(state, now)
    return s.model_copy(update={"attempts": 1})


async def test_test_event_is_deleted_without_creating_a_job(job_settings: Settings,
                                                            local_stack: LocalStack) -> None:
    send_raw(local_stack, job_settings, json.dumps({"Event": "s3:TestEvent", "Service": "Amazon S3"}))
    await serve(job_settings, idle_exit_s=1.5, install_signals=False)
    assert queue_counts(local_stack, job_settings) == (0, 0)
    assert keys(local_stack, job_settings.output_bucket, "jobs/", job_settings) == []


async def test_bad_job_id_never_becomes_a_path_and_the_message_reaches_the_dlq(
        job_settings: Settings, local_stack: LocalStack) -> None:
    body = s3_event_body(job_settings.input_bucket, "uploads/../etc/manifest.json")
    send_raw(local_stack, job_settings, body)
    await serve(job_settings, idle_exit_s=2, install_signals=False)
    assert [m.body for m in local_stack.dlq_messages(job_settings)] == [body]
    assert queue_counts(local_stack, job_settings) == (0, 0)
    assert keys(local_stack, job_settings.output_bucket, "", job_settings) == []


async def test_duplicate_for_a_finished_job_is_acknowledged_with_no_work_and_no_email(
        job_settings: Settings, local_stack: LocalStack, job_id: str) -> None:
    await _status(job_settings, job_id, _delivered(job_id))
    send_raw(local_stack, job_settings, s3_event_body(job_settings.input_bucket, f"uploads/{job_id}/manifest.json"))
    await serve(job_settings, idle_exit_s=1.5, install_signals=False)
    status = job_status(local_stack, job_settings, job_id)
    assert status is not None and status["state"] == "delivered" and status["attempts"] == 1
    assert status["stages"] == {}
    assert emails_for(local_stack.outbox, job_id) == []
    assert queue_counts(local_stack, job_settings) == (0, 0) and dlq_count(local_stack, job_settings) == 0


async def test_duplicate_of_a_job_a_live_worker_owns_goes_back_with_a_delay(
        job_settings: Settings, local_stack: LocalStack, job_id: str) -> None:
    now = time.time()
    await _status(job_settings, job_id, JobStatus.new(job_id, now).with_owner("other-worker", now))
    send_raw(local_stack, job_settings, s3_event_body(job_settings.input_bucket, f"uploads/{job_id}/manifest.json"))
    async with ObjectStore(job_settings) as store, JobQueue(job_settings) as queue:
        from processor.pipeline import Pipeline
        from processor.worker import Worker

        jobs = JobStore(store, job_settings.output_bucket, job_settings.owner_stale_after_s)
        worker = Worker(job_settings, queue, jobs, Pipeline(job_settings, store, jobs))
        [message] = await queue.receive(wait_time_s=1)
        await worker.handle(message)
        assert await queue.approximate_counts() == (0, 1)  # hidden for the delay, not deleted
        delay = busy_action(1, job_settings).delay_s
        await asyncio.sleep(delay + 0.5)
        [again] = await queue.receive(wait_time_s=1)
        assert again.message_id == message.message_id and again.receive_count == 2
    status = job_status(local_stack, job_settings, job_id)
    assert status is not None and status["owner"] == "other-worker" and status["attempts"] == 0


async def test_a_job_that_crashes_on_every_attempt_ends_failed_with_one_failed_email(
        make_job_settings, local_stack: LocalStack, job_photos: Path, job_id: str) -> None:  # noqa: ANN001
    settings = make_job_settings(failpoints="validate.start=raise")
    submit(settings, job_photos, "eve@example.com", job_id)
    await serve(settings, idle_exit_s=6, install_signals=False)
    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["state"] == "failed"
    assert status["attempts"] == settings.max_receive_count
    [mail] = emails_for(local_stack.outbox, job_id)
    assert "could not finish" in str(mail["Subject"]) and "internal error" in text_body(mail)
    assert queue_counts(local_stack, settings) == (0, 0) and dlq_count(local_stack, settings) == 0
    assert keys(local_stack, settings.input_bucket, f"uploads/{job_id}/", settings) == []


async def test_health_file_is_kept_fresh_by_the_loop_and_read_by_check_health(
        make_job_settings, tmp_path: Path) -> None:  # noqa: ANN001
    health = tmp_path / "health"
    settings = make_job_settings(health_file=health)
    await serve(settings, idle_exit_s=1.5, install_signals=False)
    assert is_healthy(health, health_max_age_s(settings), time.time())

    def check() -> int:
        env = {**os.environ, "HEADSHOTS_HEALTH_FILE": str(health)}
        return subprocess.run([sys.executable, "-m", "processor.cli", "worker", "--check-health"],
                              cwd=REPO_ROOT, env=env, timeout=60).returncode
    assert check() == 0
    old = time.time() - 10 * health_max_age_s(Settings())
    os.utime(health, (old, old))
    assert check() == 1

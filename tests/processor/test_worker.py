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

import pytest
import structlog.testing

from processor.aws.queue import JobQueue
from processor.aws.storage import ObjectStore
from processor.devkit.local_stack import LocalStack
from processor.dispatch import health_max_age_s, is_healthy
from processor.errors import SettingsError
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
        await JobStore(store, settings.output_bucket, settings.stale_after_s).create(status)


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
        make_job_settings, local_stack: LocalStack) -> None:  # noqa: ANN001
    settings = make_job_settings(dlq_sweep_interval_s=0)  # no sweeper: see what lands in the DLQ
    body = s3_event_body(settings.input_bucket, "uploads/../etc/manifest.json")
    send_raw(local_stack, settings, body)
    await serve(settings, idle_exit_s=2, install_signals=False)
    assert [m.body for m in local_stack.dlq_messages(settings)] == [body]
    assert queue_counts(local_stack, settings) == (0, 0)
    assert keys(local_stack, settings.output_bucket, "", settings) == []


async def test_the_sweeper_logs_and_drops_poison_that_reached_the_dlq_never_logging_its_body(
        make_job_settings, local_stack: LocalStack) -> None:  # noqa: ANN001
    settings = make_job_settings(dlq_sweep_interval_s=0.5)
    body = "<html>not an event: ada@example.com</html>"
    local_stack.client("sqs", settings).send_message(QueueUrl=settings.dlq_url, MessageBody=body)
    with structlog.testing.capture_logs() as logs:
        await serve(settings, idle_exit_s=2, install_signals=False)
    assert local_stack.dlq_messages(settings) == []
    [dropped] = [e for e in logs if e["event"] == "dlq_poison_dropped"]
    assert "JSON" in dropped["reason"] and "ada@" not in repr(logs)


async def test_a_new_worker_sweeps_the_dlq_at_its_first_idle_moment_not_one_interval_later(
        make_job_settings, local_stack: LocalStack) -> None:  # noqa: ANN001
    # A fleet that scaled in before its next sweep leaves the DLQ to whichever worker wakes next.
    # An interval longer than this host has been up: a worker that counted from the clock's zero
    # (a freshly booted GPU instance) would wait for it.
    settings = make_job_settings(dlq_sweep_interval_s=time.monotonic() + 3600)
    local_stack.client("sqs", settings).send_message(QueueUrl=settings.dlq_url, MessageBody="not an event")
    await serve(settings, idle_exit_s=2, install_signals=False)
    assert local_stack.dlq_messages(settings) == []


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


async def _handle_first(settings: Settings) -> tuple[str, str]:
    """One worker handles the first message on the queue; returns (message id, origin)."""
    from processor.pipeline import Pipeline
    from processor.worker import Worker

    async with ObjectStore(settings) as store, JobQueue(settings) as queue:
        jobs = JobStore(store, settings.output_bucket, settings.stale_after_s)
        [message] = await queue.receive(wait_time_s=1)
        await Worker(settings, queue, jobs, Pipeline(settings, store, jobs)).handle(message)
        return message.message_id, message.origin


async def test_duplicate_of_a_job_a_live_worker_runs_is_deleted(
        job_settings: Settings, local_stack: LocalStack, job_id: str) -> None:
    now = time.time()
    await _status(job_settings, job_id, JobStatus.new(job_id, now).claimed_by("other-worker", "its-own-message", now))
    send_raw(local_stack, job_settings, s3_event_body(job_settings.input_bucket, f"uploads/{job_id}/manifest.json"))
    await _handle_first(job_settings)
    assert queue_counts(local_stack, job_settings) == (0, 0) and _delayed(local_stack, job_settings) == 0
    status = job_status(local_stack, job_settings, job_id)
    assert status is not None and status["owner"] == "other-worker" and status["attempts"] == 1


async def test_the_live_owners_own_message_is_hidden_again_until_the_lease_would_be_stale(
        make_job_settings, local_stack: LocalStack, job_id: str) -> None:  # noqa: ANN001
    """Never deleted, never copied (a copy would be a second message for the job): the same
    message, hidden for what is left of the staleness (on S3's clock); no crash is counted."""
    settings = make_job_settings(owner_stale_after_s=4.0)
    send_raw(local_stack, settings, s3_event_body(settings.input_bucket, f"uploads/{job_id}/manifest.json"))
    sqs = local_stack.client("sqs", settings)
    [raw] = sqs.receive_message(QueueUrl=settings.queue_url, WaitTimeSeconds=1, VisibilityTimeout=0)["Messages"]
    now = time.time()
    await _status(settings, job_id, JobStatus.new(job_id, now).claimed_by("other-worker", raw["MessageId"], now))
    message_id, _ = await _handle_first(settings)
    assert message_id == raw["MessageId"]
    assert queue_counts(local_stack, settings) == (0, 1)  # in flight: hidden, not deleted, no copy
    await asyncio.sleep(6.5)
    async with JobQueue(settings) as queue:
        [again] = await queue.receive(wait_time_s=2, visibility_timeout_s=1)
    assert again.message_id == message_id
    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["crashes"] == 0 and status["owner"] == "other-worker"


def _delayed(stack: LocalStack, settings: Settings) -> int:
    attrs = stack.client("sqs", settings).get_queue_attributes(
        QueueUrl=settings.queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessagesDelayed"])


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
        make_job_settings, local_stack: LocalStack, tmp_path: Path) -> None:  # noqa: ANN001
    health = tmp_path / "health"
    settings = make_job_settings(health_file=health)
    await serve(settings, idle_exit_s=1.5, install_signals=False)
    assert is_healthy(health, health_max_age_s(settings), time.time())

    def check() -> int:
        env = {**os.environ, **local_stack.settings_env(settings), "HEADSHOTS_HEALTH_FILE": str(health)}
        return subprocess.run([sys.executable, "-m", "processor.cli", "worker", "--check-health"],
                              cwd=REPO_ROOT, env=env, timeout=60).returncode
    assert check() == 0
    old = time.time() - 10 * health_max_age_s(Settings())
    os.utime(health, (old, old))
    assert check() == 1


async def test_an_exception_in_the_failure_path_does_not_end_the_worker_and_the_job_still_fails_once(
        make_job_settings, local_stack: LocalStack, job_photos: Path, job_id: str) -> None:  # noqa: ANN001
    """Attempt 1 crashes; attempt 2 crashes and failing the job crashes too, so the message is
    handed back, past maxReceiveCount: the dead-letter queue. The same worker's sweeper then
    fails the job: one worker process throughout, one email."""
    settings = make_job_settings(max_receive_count=2, dlq_sweep_interval_s=1,
                                 failpoints="validate.start=raise,fail.start=raise@1")
    submit(settings, job_photos, "joe@example.com", job_id)
    with structlog.testing.capture_logs() as logs:
        await serve(settings, idle_exit_s=8, install_signals=False)
    events = [e["event"] for e in logs]
    assert events.count("job_fail_failed") == 1 and events.count("job_crashed") == 2, " ".join(events)
    assert events.count("job_dead_lettered") == 1
    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["state"] == "failed" and status["email"] == "sent"
    assert status["attempts"] == 2  # the sweeper's claim only ends the job: not an attempt
    [mail] = emails_for(local_stack.outbox, job_id)
    assert "after 2 tries" in text_body(mail) and "2 attempts" in text_body(mail)
    assert queue_counts(local_stack, settings) == (0, 0) and dlq_count(local_stack, settings) == 0


async def test_an_s3_outage_while_claiming_hands_the_message_back_and_the_worker_goes_on(
        make_job_settings, local_stack: LocalStack, job_photos: Path, job_id: str) -> None:  # noqa: ANN001
    from processor.devkit.fault_proxy import FaultProxy

    settings = make_job_settings(num_images=2)
    submit(settings, job_photos, "kay@example.com", job_id)
    with FaultProxy(local_stack.endpoint_url, fail_first={"s3": 6}) as proxy:  # the claim's 6 tries
        faulty = settings.model_copy(update={"aws_endpoint_url": proxy.url})
        with structlog.testing.capture_logs() as logs:
            await serve(faulty, idle_exit_s=6, install_signals=False)
    assert [e["event"] for e in logs].count("message_handling_failed") == 1
    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["state"] == "delivered" and len(emails_for(local_stack.outbox, job_id)) == 1


async def test_a_job_past_its_maximum_duration_ends_failed_with_its_email(
        make_job_settings, local_stack: LocalStack, job_photos: Path, job_id: str) -> None:  # noqa: ANN001
    settings = make_job_settings(train_steps=100_000, max_job_duration_s=21)  # training would take hours
    submit(settings, job_photos, "lou@example.com", job_id)
    started = time.monotonic()
    await serve(settings, max_jobs=1, idle_exit_s=120, install_signals=False)
    assert time.monotonic() - started < 90
    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["state"] == "failed" and "longer than" in status["error"]
    [mail] = emails_for(local_stack.outbox, job_id)
    assert "longer than" in text_body(mail)
    assert queue_counts(local_stack, settings) == (0, 0)


# --- issue 20: refuse to start without what a job cannot end without; outlive SQS outages ------
@pytest.mark.parametrize("missing", [{"frontdoor_url": None}, {"link_secret_id": None},
                                     {"link_secret_id": "no-such-secret"}])
async def test_a_worker_that_could_not_end_a_job_refuses_to_start_before_taking_any(
        missing: dict, make_job_settings, local_stack: LocalStack, job_photos: Path, job_id: str) -> None:  # noqa: ANN001
    """It used to take jobs, train, generate and deliver, then fail each at notify."""
    good = make_job_settings()
    submit(good, job_photos, "ivy@example.com", job_id)  # the operator's tool signs with the real key
    settings = good.model_copy(update=missing)
    with pytest.raises(SettingsError) as err:
        await serve(settings, idle_exit_s=1.5, install_signals=False)
    assert ("FRONTDOOR_URL" if "frontdoor_url" in missing else "LINK_SECRET_ID") in str(err.value)
    assert job_status(local_stack, settings, job_id) is None  # no job was touched
    assert queue_counts(local_stack, settings) == (1, 0)


async def test_the_worker_command_and_its_health_check_refuse_a_missing_front_door_with_the_reason(
        job_settings: Settings, local_stack: LocalStack, tmp_path: Path) -> None:
    health = tmp_path / "health"
    health.touch()
    env = {k: v for k, v in {**os.environ, **local_stack.settings_env(job_settings),
                             "HEADSHOTS_HEALTH_FILE": str(health)}.items() if k != "HEADSHOTS_FRONTDOOR_URL"}
    for args in ([], ["--check-health"]):
        proc = subprocess.run([sys.executable, "-m", "processor.cli", "worker", *args], cwd=REPO_ROOT, env=env,
                              timeout=60, capture_output=True, text=True)
        assert proc.returncode == 2 and "HEADSHOTS_FRONTDOOR_URL is not set" in proc.stderr, (args, proc.stderr)


async def test_an_sqs_outage_on_receive_delete_and_visibility_never_ends_the_worker(
        make_job_settings, local_stack: LocalStack, job_id: str) -> None:  # noqa: ANN001
    """Receives fail and back off; the delete of a finished job's duplicate and the hand-back
    both fail; the worker logs, keeps serving, and the message, back after its visibility, is
    acknowledged once SQS answers again. It used to raise out of handle() and exit."""
    from processor.devkit.fault_proxy import Fault, FaultProxy

    settings = make_job_settings(visibility_timeout_s=6, heartbeat_interval_s=2.0, owner_stale_after_s=4.0)
    await _status(settings, job_id, _delivered(job_id))
    send_raw(local_stack, settings, s3_event_body(settings.input_bucket, f"uploads/{job_id}/manifest.json"))
    faults = [Fault("sqs", "server_error", operation="ReceiveMessage", first=7),  # past its 6 tries
              Fault("sqs", "server_error", operation="DeleteMessage", first=6),
              Fault("sqs", "throttle", operation="ChangeMessageVisibility", first=6)]
    with FaultProxy(local_stack.endpoint_url, faults=faults) as proxy:
        faulty = settings.model_copy(update={"aws_endpoint_url": proxy.url})
        with structlog.testing.capture_logs() as logs:
            assert await serve(faulty, idle_exit_s=12, install_signals=False) == 0
    events = [e["event"] for e in logs]
    assert events.count("receive_failed") >= 1 and "delete_failed" in events
    assert events.count("duplicate_for_finished_job") == 2  # seen again after its visibility
    assert queue_counts(local_stack, settings) == (0, 0) and dlq_count(local_stack, settings) == 0

"""The worker holds ECS task scale-in protection while it runs a job: enabled after the claim and
before any work, renewed while the job runs, released however the attempt ends; best effort,
and nothing at all off ECS. Real jobs through ``serve`` (local stack, tiny model) and stub
runners through ``Worker.handle`` talk to a real local agent endpoint (tests/fixtures/ecs_agent.py).
The client and the rules themselves: tests/processor/test_task_protection.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import structlog

from processor.aws.queue import JobQueue
from processor.aws.retry import RetryPolicy
from processor.aws.storage import ObjectStore
from processor.aws.task_protection import ScaleInProtection, TaskProtectionClient
from processor.devkit.local_stack import LocalStack
from processor.job.attempt import JobResult, JobRun
from processor.job.store import JobStore
from processor.settings import Settings
from processor.worker import Worker, serve
from tests.fixtures.ecs_agent import FakeEcsAgent
from tests.fixtures.jobs import RejectableSet
from tests.integration.harness import (
    emails_for,
    job_status,
    queue_counts,
    s3_event_body,
    send_raw,
    submit,
)

FAST = RetryPolicy(attempts=2, initial_s=0.01, max_wait_s=0.02, jitter_s=0.0)


# --- real jobs through serve() -------------------------------------------------------------
async def test_a_real_job_is_protected_from_before_its_first_stage_until_after_its_final_status(
        make_job_settings: Callable[..., Settings], local_stack: LocalStack,
        rejectable_photos: RejectableSet, ecs_agent: FakeEcsAgent, job_id: str) -> None:
    settings = make_job_settings(ecs_agent_uri=ecs_agent.uri, task_protection_minutes=90)
    submit(settings, rejectable_photos.folder, "pat@example.com", job_id)

    await serve(settings, max_jobs=1, idle_exit_s=30, install_signals=False)

    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["state"] == "rejected", status
    assert queue_counts(local_stack, settings) == (0, 0)
    [enable, release] = ecs_agent.puts()
    assert enable.path == release.path == ecs_agent.state_path
    assert enable.body == {"ProtectionEnabled": True, "ExpiresInMinutes": 90}
    assert release.body == {"ProtectionEnabled": False}
    stages = status["stages"].values()
    assert enable.at <= min(s["started_at"] for s in stages)  # before the job's first work
    assert release.at >= max(s["finished_at"] for s in stages)  # after its last
    assert release.at >= status["updated_at"]  # and after its final status.json write
    assert ecs_agent.protected_until is None  # the task is no longer protected


@pytest.mark.parametrize("mode", ["500", "failure"])
async def test_a_job_still_completes_when_the_agent_fails_and_the_failure_is_a_warning(
        make_job_settings: Callable[..., Settings], local_stack: LocalStack,
        rejectable_photos: RejectableSet, ecs_agent: FakeEcsAgent, job_id: str, mode: str) -> None:
    ecs_agent.mode = mode
    settings = make_job_settings(ecs_agent_uri=ecs_agent.uri)
    submit(settings, rejectable_photos.folder, "quinn@example.com", job_id)

    with structlog.testing.capture_logs() as logs:
        await serve(settings, max_jobs=1, idle_exit_s=30, install_signals=False)

    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["state"] == "rejected", status
    assert len(emails_for(local_stack.outbox, job_id)) == 1
    assert queue_counts(local_stack, settings) == (0, 0)
    warnings = [e for e in logs if e["event"] == "task_protection_failed"]
    assert [(w["log_level"], w["action"], w["job_id"]) for w in warnings] == [
        ("warning", "enable", job_id), ("warning", "release", job_id)]
    assert "quinn@example.com" not in repr(warnings)
    assert len(ecs_agent.puts()) >= 2  # it did ask (and, for a 500, asked again)


async def test_without_ecs_agent_uri_the_worker_runs_the_job_and_asks_no_agent(
        make_job_settings: Callable[..., Settings], local_stack: LocalStack,
        rejectable_photos: RejectableSet, ecs_agent: FakeEcsAgent, job_id: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECS_AGENT_URI", raising=False)
    settings = make_job_settings()
    assert settings.ecs_agent_uri is None
    submit(settings, rejectable_photos.folder, "ray@example.com", job_id)

    with structlog.testing.capture_logs() as logs:
        await serve(settings, max_jobs=1, idle_exit_s=30, install_signals=False)

    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["state"] == "rejected", status
    assert queue_counts(local_stack, settings) == (0, 0)
    assert ecs_agent.requests == []
    assert [e["event"] for e in logs if e["event"].startswith("task_protection")] == ["task_protection_unavailable"]


# --- every way an attempt ends, with stub runners through Worker.handle ---------------------
class StubRunner:
    """Marks its run (and a final-attempt ``fail``) on the agent's timeline, then ends as told."""

    def __init__(self, agent: FakeEcsAgent, outcome: str, seconds: float = 0.0) -> None:
        self.agent, self.outcome, self.seconds = agent, outcome, seconds

    async def run(self, job: JobRun) -> JobResult:
        self.agent.mark("run start")
        await asyncio.sleep(self.seconds)
        self.agent.mark("run end")
        if self.outcome == "crash":
            raise RuntimeError("a stage crashed")
        return JobResult(self.outcome)

    async def fail(self, job: JobRun, reason: str) -> None:
        self.agent.mark("fail")

    async def cleanup(self, job_id: str) -> None:
        self.agent.mark("cleanup")


async def _handle_one(settings: Settings, local_stack: LocalStack, job_id: str, runner: StubRunner,
                      agent: FakeEcsAgent, expires_in_minutes: int = 120,
                      renew_every_s: float | None = None) -> None:
    send_raw(local_stack, settings, s3_event_body(settings.input_bucket, f"uploads/{job_id}/manifest.json"))
    async with (ObjectStore(settings) as store, JobQueue(settings) as queue,
                TaskProtectionClient(agent.uri, policy=FAST) as client):
        jobs = JobStore(store, settings.output_bucket, settings.stale_after_s)
        worker = Worker(settings, queue, jobs, runner,
                        protection=ScaleInProtection(client, expires_in_minutes, renew_every_s))
        [message] = await queue.receive(wait_time_s=1)
        await worker.handle(message)


@pytest.mark.parametrize(("outcome", "max_receive_count", "timeline"), [
    ("terminal", 3, ["PUT true", "run start", "run end", "PUT false"]),
    ("interrupted", 3, ["PUT true", "run start", "run end", "PUT false"]),  # SIGTERM: handed back
    ("lost", 3, ["PUT true", "run start", "run end", "PUT false"]),         # another worker owns it
    ("crash", 3, ["PUT true", "run start", "run end", "PUT false"]),        # handed back with a delay
    ("crash", 1, ["PUT true", "run start", "run end", "fail", "PUT false"]),  # final: failed email too
])
async def test_protection_is_released_however_the_attempt_ends(
        make_aws_settings: Callable[..., Settings], local_stack: LocalStack, ecs_agent: FakeEcsAgent,
        job_id: str, outcome: str, max_receive_count: int, timeline: list[str]) -> None:
    settings = make_aws_settings(max_receive_count=max_receive_count)
    await _handle_one(settings, local_stack, job_id, StubRunner(ecs_agent, outcome), ecs_agent)
    assert ecs_agent.labels() == timeline
    assert ecs_agent.protected_until is None


async def test_a_long_job_keeps_its_protection_renewed_until_it_ends(
        make_aws_settings: Callable[..., Settings], local_stack: LocalStack, ecs_agent: FakeEcsAgent,
        job_id: str) -> None:
    settings = make_aws_settings()
    await _handle_one(settings, local_stack, job_id, StubRunner(ecs_agent, "terminal", seconds=1.2), ecs_agent,
                      expires_in_minutes=1, renew_every_s=0.25)
    labels = ecs_agent.labels()
    start, end = labels.index("run start"), labels.index("run end")
    assert labels[:start] == ["PUT true"] and labels[end + 1:] == ["PUT false"]
    renewals = labels[start + 1:end]
    assert len(renewals) >= 3 and set(renewals) == {"PUT true"}
    assert all(r.body == {"ProtectionEnabled": True, "ExpiresInMinutes": 1} for r in ecs_agent.puts()[:-1])


async def test_when_the_shutdown_grace_runs_out_the_protection_is_released_with_the_message(
        make_aws_settings: Callable[..., Settings], local_stack: LocalStack, ecs_agent: FakeEcsAgent,
        job_id: str) -> None:
    """``release_current`` (the SIGTERM watchdog, right before the process exits) while a stage
    is still busy: the message goes back and the task's protection is cleared too."""
    settings = make_aws_settings()
    send_raw(local_stack, settings, s3_event_body(settings.input_bucket, f"uploads/{job_id}/manifest.json"))
    async with (ObjectStore(settings) as store, JobQueue(settings) as queue,
                TaskProtectionClient(ecs_agent.uri, policy=FAST) as client):
        jobs = JobStore(store, settings.output_bucket, settings.stale_after_s)
        worker = Worker(settings, queue, jobs, StubRunner(ecs_agent, "interrupted", seconds=1.0),
                        protection=ScaleInProtection(client, 120))
        [message] = await queue.receive(wait_time_s=1)
        handling = asyncio.create_task(worker.handle(message))
        while "run start" not in ecs_agent.labels():
            await asyncio.sleep(0.02)
        await worker.release_current()
        assert ecs_agent.labels() == ["PUT true", "run start", "PUT false"]
        assert ecs_agent.protected_until is None
        await handling

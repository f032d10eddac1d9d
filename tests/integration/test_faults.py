"""The fault suite: DESIGN.md's delivery promises under kill -9, SIGTERM, duplicates, concurrent
workers, injected AWS errors, poison messages and short visibility timeouts.

Workers are real child processes (``python -m processor.cli worker``) on the local stack; the
job runs on the tiny model. Every case checks the promise, not the mechanism: the job ends in
the expected terminal state, exactly one email, no duplicate result objects, the queue empty
and the dead-letter queue empty (or holding exactly the poison).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from processor.devkit.fault_proxy import FaultProxy
from processor.devkit.local_stack import LocalStack
from processor.settings import Settings
from tests.fixtures.jobs import RejectableSet
from tests.integration.harness import (
    Fleet,
    WorkerProcess,
    dlq_count,
    emails_for,
    job_status,
    keys,
    queue_counts,
    s3_event_body,
    send_raw,
    stage_runs,
    submit,
    wait_for,
    wait_for_stage,
    wait_for_state,
)

STAGES = ("validate", "prepare", "train", "generate", "deliver", "notify")
JOB_TIMEOUT = 300


@pytest.fixture
def fault_settings(make_job_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Short visibility and staleness, so a dead worker's job is picked up within seconds."""
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {"visibility_timeout_s": 10, "heartbeat_interval_s": 2.0,
                                     "owner_stale_after_s": 6.0, "num_images": 3}
        values.update(overrides)
        return make_job_settings(**values)
    return make


@pytest.fixture
def fleet_for(local_stack: LocalStack, tmp_path: Path) -> Iterator[Callable[[Settings], Fleet]]:
    fleets: list[Fleet] = []

    def make(settings: Settings) -> Fleet:
        fleet = Fleet(local_stack, settings, tmp_path / f"fleet{len(fleets)}", [])
        fleets.append(fleet)
        return fleet
    yield make
    for fleet in fleets:
        fleet.stop_all()


def assert_delivered_once(stack: LocalStack, settings: Settings, job_id: str) -> dict:
    """The promise: delivered, one email, each result object once, queue and DLQ empty."""
    status = job_status(stack, settings, job_id)
    assert status is not None and status["state"] == "delivered", status
    assert len(emails_for(stack.outbox, job_id)) == 1
    names = sorted(k.rsplit("/", 1)[-1] for k in keys(stack, settings.output_bucket, f"results/{job_id}/", settings))
    n = settings.num_images
    assert names == sorted([f"headshot-{i:03d}.jpg" for i in range(1, n + 1)]
                           + ["contact-sheet.jpg", "headshots.zip", "results.json"])
    wait_for(lambda: queue_counts(stack, settings) == (0, 0), 30, what="an empty queue")
    assert dlq_count(stack, settings) == 0
    return status


# --- 1. kill -9 during each stage ------------------------------------------------------------
#: Where in each stage the worker is frozen (SIGSTOP) so the test can kill -9 it from outside
#: at a known point: a tiny job's stages last milliseconds to seconds, polling would be a race.
KILL_POINTS = {
    "validate": "validate.running",         # photos downloaded, the gate running
    "train": "train.step@5",                # a checkpoint at step 4, step 5 done: one step lost
    "generate": "generate.image@2",         # two headshots checkpointed, two to go
    "deliver": "deliver.uploaded@2",        # headshots and contact sheet uploaded, zip not yet
    "notify": "notify.sent",                # email sent, status not yet delivered
}


def kill_at(fleet: Fleet, point: str) -> WorkerProcess:
    """Start a worker that freezes at ``point``; return it frozen (the caller kills it)."""
    name, _, nth = point.partition("@")
    return fleet.start("first", HEADSHOTS_FAILPOINTS=f"{name}=pause" + (f"@{nth}" if nth else ""))


@pytest.mark.parametrize("stage", [
    pytest.param(s, marks=() if s == "train" else pytest.mark.slow) for s in KILL_POINTS])
def test_kill_9_during_a_stage_loses_only_that_stage_and_a_new_worker_finishes(
        stage: str, fault_settings: Callable[..., Settings], fleet_for: Callable[[Settings], Fleet],
        local_stack: LocalStack, job_photos: Path, job_id: str) -> None:
    settings = fault_settings(train_steps=8, num_images=4, generation_batch_size=1)
    fleet = fleet_for(settings)
    first = kill_at(fleet, KILL_POINTS[stage])
    submit(settings, job_photos, "kim@example.com", job_id)
    first.wait_paused(JOB_TIMEOUT)
    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["stages"][stage]["finished_at"] is None  # inside the stage
    first.kill9()
    assert first.proc.returncode == -9

    fleet.start("second")
    wait_for_state(local_stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
    status = assert_delivered_once(local_stack, settings, job_id)
    runs = stage_runs(status)
    killed = STAGES.index(stage)
    assert all(runs[s] == 1 for s in STAGES[:killed]), runs  # finished stages were not redone
    assert runs[stage] == 2, runs
    assert all(runs[s] == 1 for s in STAGES[killed + 1:]), runs


# --- 2. SIGTERM during training ------------------------------------------------------------
def test_sigterm_during_training_releases_the_message_within_the_grace_and_another_worker_finishes(
        fault_settings: Callable[..., Settings], fleet_for: Callable[[Settings], Fleet],
        local_stack: LocalStack, job_photos: Path, job_id: str) -> None:
    settings = fault_settings(train_steps=20, visibility_timeout_s=60, heartbeat_interval_s=5.0,
                              shutdown_grace_s=20.0)
    fleet = fleet_for(settings)
    first = fleet.start("first", HEADSHOTS_FAILPOINTS="train.step=pause@5")
    submit(settings, job_photos, "lee@example.com", job_id)
    first.wait_paused(JOB_TIMEOUT)

    started = time.monotonic()
    first.terminate()  # pending while frozen; delivered the moment it runs again
    first.resume()
    assert first.wait(settings.shutdown_grace_s) == 0
    assert time.monotonic() - started < settings.shutdown_grace_s
    # handed back: visible now, long before the 60 s visibility timeout would have run out
    assert queue_counts(local_stack, settings) == (1, 0)
    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["owner"] is None and status["state"] == "training"
    assert keys(local_stack, settings.output_bucket, f"jobs/{job_id}/work/train/checkpoints/", settings)

    second = fleet.start("second")
    wait_for_state(local_stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
    status = assert_delivered_once(local_stack, settings, job_id)
    assert stage_runs(status)["train"] == 2 and stage_runs(status)["validate"] == 1
    assert any(e.get("event") == "train_resuming" for e in second.events())


# --- 3. the same S3 event five times -------------------------------------------------------
def test_the_same_event_five_times_some_during_the_run_gives_one_run_and_one_email(
        fault_settings: Callable[..., Settings], fleet_for: Callable[[Settings], Fleet],
        local_stack: LocalStack, job_photos: Path, job_id: str) -> None:
    settings = fault_settings()
    fleet = fleet_for(settings)
    submit(settings, job_photos, "max@example.com", job_id)
    body = s3_event_body(settings.input_bucket, f"uploads/{job_id}/manifest.json")
    send_raw(local_stack, settings, body)
    fleet.start("a")
    fleet.start("b")
    wait_for_stage(local_stack, settings, job_id, "validate", JOB_TIMEOUT, fleet=fleet)
    for _ in range(3):
        send_raw(local_stack, settings, body)
    wait_for_state(local_stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
    status = assert_delivered_once(local_stack, settings, job_id)
    assert status["attempts"] == 1
    assert all(runs == 1 for runs in stage_runs(status).values())
    claims = [e for e in fleet.all_events() if e.get("event") == "job_claimed"]
    assert len(claims) == 1


# --- 4. two workers, several jobs ------------------------------------------------------------
@pytest.mark.parametrize("n_jobs", [2, pytest.param(6, marks=pytest.mark.slow)])
def test_two_workers_on_one_queue_deliver_every_job_exactly_once(
        n_jobs: int, fault_settings: Callable[..., Settings], fleet_for: Callable[[Settings], Fleet],
        local_stack: LocalStack, job_photos: Path, new_job_id: Callable[[], str]) -> None:
    settings = fault_settings(num_images=2)
    fleet = fleet_for(settings)
    fleet.start("a")
    fleet.start("b")
    jobs = [new_job_id() for _ in range(n_jobs)]
    for i, job in enumerate(jobs):
        submit(settings, job_photos, f"user{i}@example.com", job)
    for job in jobs:
        wait_for_state(local_stack, settings, job, ["delivered"], JOB_TIMEOUT * 2, fleet=fleet)
    for job in jobs:
        status = assert_delivered_once(local_stack, settings, job)
        assert all(runs == 1 for runs in stage_runs(status).values()) and status["attempts"] == 1
    claims = [e["job_id"] for e in fleet.all_events() if e.get("event") == "job_claimed"]
    assert sorted(claims) == sorted(jobs)  # none run twice
    if n_jobs >= 6:
        assert all(any(e.get("event") == "job_claimed" for e in w.events()) for w in fleet.workers)


# --- 5. injected S3 503 SlowDown and SES throttling ----------------------------------------
def test_s3_slowdown_and_ses_throttling_on_30_percent_of_calls_are_retried_and_the_job_delivered(
        fault_settings: Callable[..., Settings], fleet_for: Callable[[Settings], Fleet],
        local_stack: LocalStack, job_photos: Path, job_id: str) -> None:
    settings = fault_settings(email_backend="ses")
    submit(settings, job_photos, "ned@example.com", job_id)
    # SES is called once per job: its first call always fails, then 30% as for S3.
    with FaultProxy(local_stack.endpoint_url, rates={"s3": 0.3, "ses": 0.3}, seed=7,
                    fail_first={"ses": 1}) as proxy:
        fleet = fleet_for(settings)
        worker = fleet.start("faulty", HEADSHOTS_AWS_ENDPOINT_URL=proxy.url)
        wait_for_state(local_stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
        wait_for(lambda: queue_counts(local_stack, settings) == (0, 0), 30, what="an empty queue")
        injected = dict(proxy.counts.injected)
    assert injected.get("s3", 0) > 5 and injected.get("ses", 0) >= 1
    retries = [e for e in worker.events() if e.get("event") == "aws_retry"]
    # retried and logged (a fault whose answer never reached a closed connection is not seen)
    assert len(retries) >= 0.9 * sum(injected.values())
    assert any("SlowDown" in str(e.get("error")) for e in retries)
    assert any("Throttling" in str(e.get("error")) for e in retries)
    sent = [m for m in local_stack.ses_sent_messages() if f"X-Headshots-Job: {job_id}" in m.raw]
    assert len(sent) == 1
    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["state"] == "delivered"
    assert dlq_count(local_stack, settings) == 0


# --- 6. poison messages ------------------------------------------------------------------
def test_poison_messages_reach_the_dlq_or_end_with_a_reason_and_the_worker_serves_the_next_job(
        fault_settings: Callable[..., Settings], fleet_for: Callable[[Settings], Fleet],
        local_stack: LocalStack, rejectable_photos: RejectableSet, new_job_id: Callable[[], str]) -> None:
    settings = fault_settings()
    not_json = "<html>not an event</html>"
    bad_id = s3_event_body(settings.input_bucket, "uploads/../../etc/manifest.json")
    missing = new_job_id()
    send_raw(local_stack, settings, not_json)
    send_raw(local_stack, settings, bad_id)
    send_raw(local_stack, settings, s3_event_body(settings.input_bucket, f"uploads/{missing}/manifest.json"))
    good = new_job_id()
    submit(settings, rejectable_photos.folder, "ora@example.com", good)
    fleet = fleet_for(settings)
    worker = fleet.start("w")

    wait_for_state(local_stack, settings, good, ["rejected"], JOB_TIMEOUT, fleet=fleet)
    wait_for(lambda: dlq_count(local_stack, settings) == 2, 60, what="two messages in the DLQ")
    assert sorted(m.body for m in local_stack.dlq_messages(settings)) == sorted([not_json, bad_id])
    status = job_status(local_stack, settings, missing)
    assert status is not None and status["state"] == "failed" and "manifest" in status["error"]
    assert emails_for(local_stack.outbox, good) and len(emails_for(local_stack.outbox, good)) == 1
    wait_for(lambda: queue_counts(local_stack, settings) == (0, 0), 30, what="an empty queue")
    assert worker.alive
    reasons = [e.get("reason") for e in worker.events() if e.get("event") == "message_rejected"]
    assert any("JSON" in (r or "") for r in reasons) and any("job id" in (r or "") for r in reasons)


# --- 7. visibility shorter than the job ------------------------------------------------------
def test_a_job_longer_than_the_visibility_timeout_is_not_redelivered_while_the_heartbeat_lives(
        fault_settings: Callable[..., Settings], fleet_for: Callable[[Settings], Fleet],
        local_stack: LocalStack, job_photos: Path, job_id: str) -> None:
    settings = fault_settings(visibility_timeout_s=2, heartbeat_interval_s=0.5)
    fleet = fleet_for(settings)
    fleet.start("a")
    fleet.start("b")
    submit(settings, job_photos, "pat@example.com", job_id)
    started = time.monotonic()
    wait_for_state(local_stack, settings, job_id, ["delivered"], JOB_TIMEOUT, fleet=fleet)
    assert time.monotonic() - started > 3 * settings.visibility_timeout_s  # the job outlived it
    status = assert_delivered_once(local_stack, settings, job_id)
    assert status["attempts"] == 1 and all(r == 1 for r in stage_runs(status).values())
    events = fleet.all_events()
    assert [e["job_id"] for e in events if e.get("event") == "job_claimed"] == [job_id]
    assert not [e for e in events if e.get("event") == "job_owned_elsewhere"]

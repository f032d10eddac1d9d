"""The fault suite: DESIGN.md's delivery promises under kill -9, SIGTERM, pauses, duplicates,
concurrent workers, injected AWS errors, lost SES answers and dead letters.

The cases ``bench/faults.py --quick`` plays in CI (kill -9 in training, one SIGTERM, one event
five times, poison messages, and every rude kind of ``tests/integration/rude_scenarios.py``)
are not repeated here; its counts are asserted by ``tests/bench/test_faults_bench.py``.

Timing is production's: the production defaults' visibility : heartbeat : staleness : receive
count, scaled down to a tenth (``processor.devkit.profiles.production_timing``); the kill and
SIGTERM cases also run with the staleness of the settings before the lease rule (300 s against
a 120 s visibility, scaled). The scenarios themselves live in ``tests/integration/scenarios.py``
(shared with ``bench/faults.py``); each test checks the promise, not the mechanism: one terminal
state, exactly one email (or an explicit ``email: unknown`` with its alarm), no work done twice,
the queue and the dead-letter queue empty, no job folder left on any worker's disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from processor.devkit.local_stack import LocalStack
from processor.devkit.profiles import production_timing
from processor.settings import Settings
from tests.integration.harness import keys, stage_runs
from tests.integration.scenarios import (
    KILL_POINTS,
    STAGES,
    Outcome,
    Scenarios,
    stage_reruns,
)

TIMINGS = {"derived": production_timing(), "legacy": production_timing(legacy=True)}


@pytest.fixture(params=["derived"])
def scenarios(request: pytest.FixtureRequest, make_job_settings: Callable[..., Settings],
              local_stack: LocalStack, job_photos: Path, tmp_path: Path) -> Iterator[Scenarios]:
    yield Scenarios(local_stack, job_photos, make_job_settings, tmp_path, TIMINGS[request.param])


def assert_delivered_once(outcome: Outcome, job_id: str, allowed_reruns: dict[str, int] | None = None) -> dict:
    """The promise: delivered, one email, each stage once (but for allowed reruns), all clean."""
    status = outcome.jobs[job_id]
    assert status.get("state") == "delivered", status
    assert outcome.emails[job_id] == 1 and status.get("email") == "sent"
    assert stage_reruns(outcome, job_id, allowed_reruns) == 0, stage_runs(status)
    assert outcome.queue == (0, 0) and outcome.dlq == 0
    assert outcome.leftover_dirs == [] and outcome.leftover_objects == {}
    assert outcome.stale_writes == [] and outcome.unfenced_writes == []
    assert outcome.worker_exits == 0 and outcome.owner_overlaps == 0
    return status


# --- 1. kill -9 in each stage, and on the same instance the disk is cleared ---------------------
KILL_CASES = [pytest.param("derived", s, marks=pytest.mark.slow, id=f"{s}-derived")
              for s in KILL_POINTS if s != "train"] + [pytest.param("legacy", "train", marks=pytest.mark.slow,
                                                                      id="train-legacy")]


@pytest.mark.parametrize(("scenarios", "stage"), KILL_CASES, indirect=["scenarios"])
def test_kill_9_in_a_stage_loses_only_that_stage_and_a_restarted_worker_finishes_on_a_clean_disk(
        stage: str, scenarios: Scenarios, job_id: str) -> None:
    outcome = scenarios.kill9(stage, job_id)
    assert outcome.extra["inside_stage"] and outcome.extra["exit_code"] == -9
    status = assert_delivered_once(outcome, job_id, allowed_reruns={stage: 1})
    runs = stage_runs(status)
    killed = STAGES.index(stage)
    assert all(runs[s] == 1 for s in STAGES[:killed]) and runs[stage] == 2, runs
    # the dead worker's job folder was on the disk; the restarted worker cleared it
    assert outcome.extra["left_behind"] == [job_id]
    starts = [e for e in outcome.events if e.get("event") == "worker_started"]
    assert starts[-1]["stale_folders"] >= 1


# --- 2. spot interruptions do not spend the crash budget ----------------------------------------
@pytest.mark.slow
def test_four_sigterms_in_a_row_still_deliver_with_one_email(scenarios: Scenarios, job_id: str) -> None:
    settings_receives = scenarios.timing["max_receive_count"]
    outcome = scenarios.sigterms(job_id, times=settings_receives + 1)
    assert all(code == 0 and seconds < 30 for code, seconds in outcome.extra["exits"])
    status = assert_delivered_once(outcome, job_id, allowed_reruns={"train": settings_receives + 1})
    assert status["attempts"] == settings_receives + 2
    assert outcome.event_count("job_interrupted_requeued") == settings_receives + 1
    assert outcome.event_count("job_dead_lettered") == 0


# --- 3. a paused owner wakes up after the job moved on ------------------------------------------
@pytest.mark.slow
def test_an_owner_paused_past_staleness_sends_nothing_and_the_new_owner_delivers_once(
        scenarios: Scenarios, job_id: str) -> None:
    outcome = scenarios.paused_past_staleness(job_id)
    assert_delivered_once(outcome, job_id, allowed_reruns={"generate": 1})
    assert outcome.extra["old_alive"]  # it noticed, stopped the job, and serves the queue again
    assert "email_sent" not in outcome.extra["old_events"] and "job_ended" not in outcome.extra["old_events"]
    assert outcome.jobs[job_id]["lease_epoch"] == 2


# --- 4. concurrency (duplicates: bench/faults.py --quick) ------------------------------------------
@pytest.mark.parametrize("n_jobs", [2, pytest.param(6, marks=pytest.mark.slow)])
def test_two_workers_on_one_queue_deliver_every_job_exactly_once(
        n_jobs: int, scenarios: Scenarios, new_job_id: Callable[[], str]) -> None:
    jobs = [new_job_id() for _ in range(n_jobs)]
    outcome = scenarios.two_workers(jobs)
    for job in jobs:
        assert assert_delivered_once(outcome, job)["attempts"] == 1
    claims = [e["job_id"] for e in outcome.events if e.get("event") == "job_claimed"]
    assert sorted(claims) == sorted(jobs)  # none run twice
    if n_jobs >= 6:
        assert all(n > 0 for n in outcome.extra["claims_by_worker"].values())


def test_a_job_longer_than_the_visibility_timeout_is_not_redelivered_while_the_heartbeat_lives(
        scenarios: Scenarios, job_id: str) -> None:
    outcome = scenarios.long_job_short_visibility(job_id)
    assert outcome.extra["seconds"] > 3 * outcome.settings.visibility_timeout_s
    assert assert_delivered_once(outcome, job_id)["attempts"] == 1
    assert outcome.event_count("job_claimed") == 1
    assert outcome.event_count("owners_message_hidden") == 0 and outcome.event_count("duplicate_deleted") == 0


# --- 5. AWS faults and the email ------------------------------------------------------------------
def test_s3_slowdown_and_ses_throttling_on_30_percent_of_calls_are_retried_and_the_job_delivered(
        scenarios: Scenarios, job_id: str) -> None:
    outcome = scenarios.injected_faults(job_id)
    assert outcome.extra["injected"].get("s3", 0) > 5 and outcome.extra["injected"].get("ses", 0) >= 1
    retries = [e for e in outcome.events if e.get("event") == "aws_retry"]
    assert len(retries) >= 0.9 * sum(outcome.extra["injected"].values())
    assert any("SlowDown" in str(e.get("error")) for e in retries)
    assert any("Throttling" in str(e.get("error")) for e in retries)
    assert outcome.state(job_id) == "delivered" and outcome.emails[job_id] == 1
    assert outcome.queue == (0, 0) and outcome.dlq == 0


def test_an_ses_answer_lost_after_the_send_gives_no_second_email_and_an_alarmed_unknown(
        scenarios: Scenarios, job_id: str) -> None:
    outcome = scenarios.ses_answer_lost(job_id)
    assert outcome.state(job_id) == "delivered"
    assert outcome.emails[job_id] == 1  # SES took it once; nobody sent it again
    assert outcome.jobs[job_id]["email"] == "unknown" and outcome.event_count("email_unknown") == 1
    assert outcome.extra["forwarded"].get("ses") == 1


@pytest.mark.slow
def test_kill_9_between_the_marker_and_the_send_is_never_a_silent_zero(scenarios: Scenarios, job_id: str) -> None:
    outcome = scenarios.kill_between_marker_and_send(job_id)
    status = outcome.jobs[job_id]
    assert status["state"] == "delivered" and outcome.emails[job_id] <= 1
    # exactly one email, or "unknown" with its alarm (the log event a metric filter counts)
    assert outcome.emails[job_id] == 1 or (status["email"] == "unknown" and outcome.event_count("email_unknown") == 1)
    assert outcome.queue == (0, 0) and outcome.dlq == 0 and outcome.leftover_dirs == []


# --- 6. jobs that cannot finish -------------------------------------------------------------------
@pytest.mark.slow
def test_a_job_whose_message_reaches_the_dlq_ends_failed_with_one_email(scenarios: Scenarios, job_id: str) -> None:
    outcome = scenarios.dead_lettered(job_id)
    assert outcome.state(job_id) == "failed" and outcome.emails[job_id] == 1
    assert outcome.event_count("job_dead_lettered") == 1
    assert outcome.jobs[job_id]["attempts"] == outcome.settings.max_receive_count
    assert outcome.jobs[job_id]["crashes"] >= outcome.settings.max_receive_count - 1
    assert outcome.queue == (0, 0) and outcome.dlq == 0
    assert keys(scenarios.stack, outcome.settings.input_bucket, f"uploads/{job_id}/", outcome.settings) == []
    assert outcome.leftover_objects == {}

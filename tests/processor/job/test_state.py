"""The job state machine: allowed moves, terminal states, timings, JSON round trip."""

from __future__ import annotations

import pytest

from processor.job.state import (
    TERMINAL,
    EmailState,
    InvalidTransition,
    JobState,
    JobStatus,
    ProgressInfo,
    can_transition,
    email_missing,
    ended_validation,
)

S = JobState
HAPPY_PATH = [S.RECEIVED, S.VALIDATING, S.TRAINING, S.GENERATING, S.DELIVERING, S.DELIVERED]


def test_happy_path_walks_from_received_to_delivered() -> None:
    status = JobStatus.new("j", now=0.0)
    for i, target in enumerate(HAPPY_PATH[1:], start=1):
        status = status.transition(target, now=float(i))
    assert status.state is S.DELIVERED and status.is_terminal and status.updated_at == 5.0


def test_validation_can_end_in_rejected() -> None:
    status = JobStatus.new("j", 0).transition(S.VALIDATING, 1).transition(S.REJECTED, 2)
    assert status.state is S.REJECTED and status.is_terminal


@pytest.mark.parametrize("state", [s for s in S if s not in TERMINAL])
def test_every_running_state_may_fail_and_may_be_resumed(state: JobState) -> None:
    assert can_transition(state, S.FAILED)
    assert can_transition(state, state)


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
@pytest.mark.parametrize("target", list(S))
def test_terminal_states_never_move(terminal: JobState, target: JobState) -> None:
    assert not can_transition(terminal, target)
    status = JobStatus(job_id="j", state=terminal, created_at=0, updated_at=0)
    with pytest.raises(InvalidTransition):
        status.transition(target, 1)


@pytest.mark.parametrize("current, target", [
    (S.RECEIVED, S.TRAINING), (S.RECEIVED, S.DELIVERED), (S.VALIDATING, S.GENERATING),
    (S.TRAINING, S.VALIDATING), (S.TRAINING, S.REJECTED), (S.GENERATING, S.DELIVERED),
    (S.DELIVERING, S.REJECTED),
])
def test_skipping_or_going_back_is_refused(current: JobState, target: JobState) -> None:
    assert not can_transition(current, target)


def test_terminal_states_are_exactly_rejected_delivered_failed() -> None:
    assert TERMINAL == {S.REJECTED, S.DELIVERED, S.FAILED}


def test_failure_keeps_the_reason_and_clears_progress() -> None:
    status = (JobStatus.new("j", 0).transition(S.VALIDATING, 1)
              .with_progress(ProgressInfo(stage="validate", step=3, total=10), 2)
              .transition(S.FAILED, 3, error="training diverged"))
    assert status.error == "training diverged" and status.progress is None


def test_stage_timings_record_runs_and_duration() -> None:
    status = JobStatus.new("j", 0).start_stage("train", 10).finish_stage("train", 25)
    assert status.stages["train"].seconds == 15 and status.stages["train"].runs == 1
    status = status.start_stage("train", 30)
    assert status.stages["train"].runs == 2 and status.stages["train"].seconds is None


def test_updates_return_new_values_and_leave_the_original_alone() -> None:
    original = JobStatus.new("j", 0)
    changed = original.transition(S.VALIDATING, 1).with_owner("w1", 1)
    assert original.state is S.RECEIVED and original.owner is None
    assert changed.owner == "w1" and changed.owner_heartbeat_at == 1


def test_crashes_are_counted_by_a_takeover_or_a_release_after_an_exception_not_a_hand_back() -> None:
    status = JobStatus.new("j", 0).claimed_by("w1", "m1", 1)
    assert status.released(2).crashes == 0  # a hand-back (SIGTERM)
    assert status.released(2, crashed=True).crashes == 1
    taken = status.claimed_by("w2", "m2", 3, crashed=True)
    assert taken.crashes == 1 and taken.lease_epoch == 2 and taken.owner_message == "m2"


def test_only_a_failed_email_with_an_address_counts_as_missing() -> None:
    assert email_missing("failed") and email_missing(EmailState.FAILED)
    assert not any(email_missing(s) for s in ("sent", "unknown", "none", None))


def test_status_round_trips_through_json() -> None:
    status = (JobStatus.new("job-1", 1.5).transition(S.VALIDATING, 2).start_stage("validate", 2)
              .finish_stage("validate", 4).with_owner("w", 4)
              .with_progress(ProgressInfo(stage="train", step=5, total=100, loss=0.25), 5)
              .model_copy(update={"attempts": 2, "validation": {"usable": 12, "rejected": ["a.jpg"]},
                                  "result": {"images": 50}}))
    again = JobStatus.from_json(status.to_json())
    assert again == status
    assert b'"state": "validating"' in status.to_json()


def _delivering() -> JobStatus:
    status = JobStatus.new("j", now=0.0)
    for i, target in enumerate(HAPPY_PATH[1:-1], start=1):
        status = status.transition(target, now=float(i))
    return status.with_owner("worker-a", now=4.5)


def test_end_records_the_public_result_and_releases_the_owner() -> None:
    result = {"prefix": "results/j/", "files": ["a.jpg"], "summary": {"kept": 1}, "archive": "x.zip"}
    ended = _delivering().end(S.DELIVERED, now=9.0, result=result)
    assert ended.state is S.DELIVERED and ended.updated_at == 9.0
    assert ended.result == {"prefix": "results/j/", "files": ["a.jpg"], "summary": {"kept": 1}}
    assert ended.owner is None and ended.owner_heartbeat_at is None and ended.progress is None


def test_repeating_the_same_end_changes_nothing() -> None:
    ended = _delivering().end(S.FAILED, now=9.0, error="boom")
    assert ended.end(S.FAILED, now=20.0, error="other") is ended


def test_a_job_that_ended_one_way_cannot_end_another() -> None:
    ended = _delivering().end(S.DELIVERED, now=9.0)
    with pytest.raises(InvalidTransition, match="already ended as delivered"):
        ended.end(S.FAILED, now=10.0, error="late crash")


def test_end_refuses_a_state_that_is_not_terminal() -> None:
    with pytest.raises(InvalidTransition, match="not a terminal state"):
        _delivering().end(S.GENERATING, now=9.0)


def test_an_ended_job_keeps_photo_numbers_and_reasons_but_no_names_face_boxes_or_measures() -> None:
    running = {"accepted": True, "usable": 10, "required": 10, "problem": None, "photos": [
        {"file": "a.jpg", "ok": True, "reason": None, "message": "", "box": [1, 2, 30, 40],
         "identity_distance": 0.31, "sharpness": 80.0, "pose_yaw": 5.0},
        {"file": "b.jpg", "ok": False, "reason": "blurry", "message": "Use a sharper photo.", "box": [3, 4, 5, 6],
         "identity_distance": 0.9}]}
    s = JobStatus.new("j", 1.0).transition(JobState.VALIDATING, 1.0).model_copy(update={"validation": running})
    delivered = s.transition(JobState.TRAINING, 2.0).transition(JobState.GENERATING, 2.0) \
        .transition(JobState.DELIVERING, 2.0).end(JobState.DELIVERED, 3.0, email="withheld")
    for ended in (delivered, s.end(JobState.REJECTED, 3.0, validation=running)):
        kept = JobStatus.from_json(ended.to_json()).validation
        assert kept is not None and kept["usable"] == 10
        assert kept["photos"] == [{"photo": 1, "ok": True, "reason": None, "message": ""},
                                  {"photo": 2, "ok": False, "reason": "blurry", "message": "Use a sharper photo."}]
        assert ended_validation(kept) == kept  # idempotent: a repeated end changes nothing
    assert JobStatus.from_json(delivered.to_json()).email == "withheld"

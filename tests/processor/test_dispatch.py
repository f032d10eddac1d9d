"""What a queue message means and what to do with it: pure decisions, no queue needed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from processor.dispatch import (
    MessageAction,
    QueueAction,
    busy_action,
    crash_action,
    is_final_attempt,
    is_healthy,
    over_budget,
    plan_message,
    receive_backoff_s,
)
from processor.settings import Settings
from tests.integration.harness import s3_event_body


def test_plan_runs_the_job_named_by_an_url_encoded_manifest_key() -> None:
    body = json.dumps({"Records": [{"s3": {"bucket": {"name": "in-bucket"},
                                           "object": {"key": "uploads%2Fada.lovelace_1%2Fmanifest.json"}}}]})
    plan = plan_message(body, "in-bucket")
    assert plan.action is MessageAction.RUN and plan.job_ids == ("ada.lovelace_1",)


def test_plan_acknowledges_the_s3_test_event() -> None:
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "in-bucket"})
    assert plan_message(body, "in-bucket").action is MessageAction.ACK


@pytest.mark.parametrize("body", ["not json {", "[]", '{"Records": []}', '{"Records": [{"s3": {}}]}'])
def test_plan_dead_letters_a_body_that_is_not_an_s3_event(body: str) -> None:
    plan = plan_message(body, "in-bucket")
    assert plan.action is MessageAction.DEAD_LETTER and plan.reason


@pytest.mark.parametrize("key", ["uploads/../x/manifest.json", "uploads/a/b/manifest.json",
                                 "uploads/bad id!/manifest.json", "elsewhere/job/manifest.json"])
def test_plan_dead_letters_a_bad_job_id_with_a_reason_and_no_job(key: str) -> None:
    plan = plan_message(s3_event_body("in-bucket", key), "in-bucket")
    assert plan.action is MessageAction.DEAD_LETTER and plan.job_ids == ()
    assert "job id" in (plan.reason or "")


def test_plan_dead_letters_an_event_from_another_bucket() -> None:
    plan = plan_message(s3_event_body("other-bucket", "uploads/job/manifest.json"), "in-bucket")
    assert plan.action is MessageAction.DEAD_LETTER


def test_the_final_attempt_is_the_one_whose_crash_spends_the_budget() -> None:
    assert not is_final_attempt(1, 3) and is_final_attempt(2, 3) and is_final_attempt(5, 3)
    assert not over_budget(2, 3) and over_budget(3, 3)


def test_any_message_but_the_live_owners_own_is_a_duplicate_deleted_once_seen() -> None:
    # a repeated S3 event, a copy whose old message outlived its delete, a stray from the DLQ
    assert busy_action(owner_message="m-owner", message_id="m-dup", lease_left_s=40) == QueueAction(delete=True)


def test_the_owners_own_message_is_never_deleted_and_hidden_until_the_lease_would_be_stale() -> None:
    action = busy_action(owner_message="m1", message_id="m1", lease_left_s=41.5)
    assert action == QueueAction(delay_s=42) and not action.delete and not action.requeue
    # an owner that recorded no message (an older status): never delete on a guess
    assert busy_action(owner_message=None, message_id="m1", lease_left_s=-3) == QueueAction(delay_s=1)
    assert busy_action("m1", "m1", lease_left_s=50000).delay_s == 43200  # SQS's longest visibility


def test_the_receive_loop_backs_off_through_an_outage_up_to_a_cap() -> None:
    assert [receive_backoff_s(n) for n in (1, 2, 3, 4, 5, 6, 7, 20)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_crash_backs_off_exponentially_until_the_budget_is_spent() -> None:
    s = Settings(visibility_timeout_s=60, heartbeat_interval_s=5, max_receive_count=3)
    assert crash_action(1, s) == QueueAction(delay_s=2)
    assert crash_action(2, s) == QueueAction(delay_s=4)
    assert crash_action(3, s) == QueueAction(delete=True)


def test_health_file_is_healthy_only_while_fresh(tmp_path: Path) -> None:
    path = tmp_path / "health"
    assert not is_healthy(path, 30, time.time())
    path.touch()
    assert is_healthy(path, 30, time.time())
    assert not is_healthy(path, 30, time.time() + 31)

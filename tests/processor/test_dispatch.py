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
    plan_message,
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


def test_final_attempt_is_the_receive_that_reaches_max_receive_count() -> None:
    assert not is_final_attempt(2, 3) and is_final_attempt(3, 3) and is_final_attempt(4, 3)


def test_busy_duplicate_goes_back_with_a_delay_but_is_dropped_on_its_last_receive() -> None:
    s = Settings(heartbeat_interval_s=5, visibility_timeout_s=60, max_receive_count=3)
    assert busy_action(1, s) == QueueAction(delete=False, delay_s=10)
    assert busy_action(3, s) == QueueAction(delete=True)


def test_crash_backs_off_exponentially_until_the_last_attempt() -> None:
    s = Settings(visibility_timeout_s=60, heartbeat_interval_s=5, max_receive_count=3)
    assert crash_action(1, s) == QueueAction(delete=False, delay_s=2)
    assert crash_action(2, s) == QueueAction(delete=False, delay_s=4)
    assert crash_action(3, s) == QueueAction(delete=True)


def test_health_file_is_healthy_only_while_fresh(tmp_path: Path) -> None:
    path = tmp_path / "health"
    assert not is_healthy(path, 30, time.time())
    path.touch()
    assert is_healthy(path, 30, time.time())
    assert not is_healthy(path, 30, time.time() + 31)

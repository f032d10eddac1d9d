"""What a queue message means and what to do with it: pure decisions, no I/O.

The worker (``processor/worker.py``) carries these out against SQS and status.json. Keeping
them as functions of values makes every delivery rule testable without a queue: a malformed
body is never deleted (redrive moves it to the DLQ), a bad job id is refused before it can
reach a path, a running job's duplicate goes back with a delay, a crash backs off until the
last attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from processor.manifest import (
    InvalidJobId,
    MalformedMessage,
    job_id_from_key,
    parse_s3_event,
)
from processor.settings import Settings


class MessageAction(StrEnum):
    ACK = "ack"                  # delete: nothing to do (s3:TestEvent)
    DEAD_LETTER = "dead_letter"  # never delete: redrive moves it to the DLQ after maxReceiveCount
    RUN = "run"                  # one or more valid job ids


@dataclass(frozen=True)
class MessagePlan:
    action: MessageAction
    job_ids: tuple[str, ...] = ()
    reason: str | None = None


def plan_message(body: str, input_bucket: str) -> MessagePlan:
    """What an SQS body asks for; a bad job id is refused here, before it reaches any path."""
    try:
        event = parse_s3_event(body)
    except MalformedMessage as exc:
        return MessagePlan(MessageAction.DEAD_LETTER, reason=str(exc))
    if event.is_test:
        return MessagePlan(MessageAction.ACK, reason="s3:TestEvent")
    job_ids: list[str] = []
    for ref in event.objects:
        if ref.bucket != input_bucket:
            return MessagePlan(MessageAction.DEAD_LETTER, reason="event names a bucket other than the input bucket")
        try:
            job_id = job_id_from_key(ref.key)
        except InvalidJobId as exc:
            return MessagePlan(MessageAction.DEAD_LETTER, reason=f"bad job id: {exc}")
        if job_id not in job_ids:
            job_ids.append(job_id)
    return MessagePlan(MessageAction.RUN, job_ids=tuple(job_ids))


def is_final_attempt(receive_count: int, max_receive_count: int) -> bool:
    """True on the last receive before redrive would move the message to the DLQ."""
    return receive_count >= max_receive_count


@dataclass(frozen=True)
class QueueAction:
    """What to do with the message: delete it, or make it visible again after ``delay_s``."""

    delete: bool
    delay_s: int = 0


def busy_action(receive_count: int, settings: Settings) -> QueueAction:
    """A duplicate of a job another live worker runs: back later, or dropped on its last receive.

    On the last receive the next one would dead-letter a message whose job is alive and owned;
    the owner's own message carries the job, so the duplicate is dropped instead.
    """
    if is_final_attempt(receive_count, settings.max_receive_count):
        return QueueAction(delete=True)
    delay = max(1, min(int(settings.heartbeat_interval_s * 2), settings.visibility_timeout_s, 900))
    return QueueAction(delete=False, delay_s=delay)


def crash_action(receive_count: int, settings: Settings) -> QueueAction:
    """After an unexpected error: retry with exponential backoff, unless this was the last try."""
    if is_final_attempt(receive_count, settings.max_receive_count):
        return QueueAction(delete=True)
    return QueueAction(delete=False, delay_s=min(2 ** receive_count, settings.visibility_timeout_s))


def health_max_age_s(settings: Settings) -> float:
    """How stale the health file may get before the container counts the worker dead."""
    return 2 * max(settings.wait_time_s, settings.heartbeat_interval_s) + 30


def is_healthy(path: Path, max_age_s: float, now: float) -> bool:
    """The liveness rule the container's HEALTHCHECK applies to the health file."""
    try:
        return now - path.stat().st_mtime <= max_age_s
    except OSError:
        return False

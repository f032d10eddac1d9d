"""What a queue message means and what to do with it: pure decisions, no I/O.

The worker (``processor/worker.py``) carries these out against SQS and status.json. Keeping
them as functions of values makes every delivery rule testable without a queue: a malformed
body is never deleted (redrive moves it to the DLQ), a bad job id is refused before it can
reach a path, a running job's duplicate is deleted once seen while the owner's own message is
kept hidden, a crash backs off until the last attempt, the receive loop backs off through an
SQS outage.
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


def is_final_attempt(crashes: int, max_receive_count: int) -> bool:
    """True when one more crash spends the job's budget (maxReceiveCount crashed attempts)."""
    return crashes + 1 >= max_receive_count


def over_budget(crashes: int, max_receive_count: int) -> bool:
    """True when the job has crashed maxReceiveCount times already: fail it without running it."""
    return crashes >= max_receive_count


@dataclass(frozen=True)
class QueueAction:
    """What to do with the message: delete it, put back a fresh copy after ``delay_s``, or hand
    the same message back (visible after ``delay_s``; that receive counts as a crash)."""

    delete: bool = False
    requeue: bool = False
    delay_s: int = 0


def busy_action(owner_message: str | None, message_id: str, lease_left_s: float) -> QueueAction:
    """The job's lease is alive and held by another worker: is this message its own?

    Any other message is a duplicate (a repeated S3 event, a copy whose old message outlived
    its delete, a stray from the DLQ): the owner's own message carries the job and comes back if
    the owner dies, so the duplicate is deleted once seen. The owner's own message back in the
    queue means its visibility lapsed while its lease lives (its SQS heartbeats fail, or it is
    dying): it is never deleted; it is hidden again, the same message, until the lease would be
    stale (``lease_left_s``, on S3's clock), when the next receiver takes the job over. Crashes
    are counted in status.json, so the receive this costs spends no crash budget.
    """
    if owner_message is not None and owner_message != message_id:
        return QueueAction(delete=True)
    return QueueAction(delay_s=max(1, min(43200, int(lease_left_s) + 1)))


def backoff_s(crashes: int, settings: Settings) -> int:
    """How long a message waits after its ``crashes``-th crash: exponential, capped by visibility."""
    return max(1, min(2 ** max(1, crashes), settings.visibility_timeout_s))


def crash_action(crashes: int, settings: Settings) -> QueueAction:
    """After an unexpected error (``crashes`` counts this one): retry with exponential backoff,
    or, once the budget is spent, end the job (the caller fails it and deletes the message)."""
    if crashes >= settings.max_receive_count:
        return QueueAction(delete=True)
    return QueueAction(delay_s=backoff_s(crashes, settings))


def receive_backoff_s(failures: int, cap_s: float = 30.0) -> float:
    """How long the receive loop waits after ``failures`` failed receives in a row (an SQS
    outage): 1, 2, 4, ... capped, so the worker rides out an outage without hammering SQS and
    without ever leaving its loop."""
    return min(cap_s, float(2 ** max(0, failures - 1)))


def overdue_reason(settings: Settings) -> str:
    """Why a job that ran past ``max_job_duration_s`` failed, in the person's words."""
    hours = settings.max_job_duration_s / 3600
    return f"the job took longer than the {hours:g} hours we allow for one"


def health_max_age_s(settings: Settings) -> float:
    """How stale the health file may get before the container counts the worker dead."""
    return 2 * max(settings.wait_time_s, settings.heartbeat_interval_s) + 30


def is_healthy(path: Path, max_age_s: float, now: float) -> bool:
    """The liveness rule the container's HEALTHCHECK applies to the health file."""
    try:
        return now - path.stat().st_mtime <= max_age_s
    except OSError:
        return False

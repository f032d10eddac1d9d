"""The job's one email: what it says about selection, the send-once marker, sending once."""

from __future__ import annotations

import asyncio
import email
from pathlib import Path

import pytest
import structlog

from processor.aws.storage import ObjectStore
from processor.devkit.local_stack import LocalStack
from processor.email import SmtpSender, build_message, render_email
from processor.notify import EmailMarker, selection_note, send_once
from processor.settings import Settings

ADDRESS = "ada.lovelace@example.com"


def test_report_mode_is_stated_in_the_note() -> None:
    note = selection_note({"mode": "report", "requested": 50, "delivered": 50, "shortfall": 0}, Settings())
    assert note is not None and "report mode" in note and note.endswith(".")


def test_a_shortfall_in_enforce_mode_says_how_many_passed() -> None:
    note = selection_note({"mode": "enforce", "requested": 50, "delivered": 44, "shortfall": 6}, Settings())
    assert note is not None and "44 of 50" in note and "report" not in note


def test_a_full_enforced_delivery_needs_no_note() -> None:
    assert selection_note({"mode": "enforce", "requested": 50, "delivered": 50, "shortfall": 0},
                          Settings()) is None


# --- the send-once marker -------------------------------------------------------------
async def test_email_marker_lets_exactly_one_sender_through(aws_settings: Settings, job_id: str) -> None:
    async with ObjectStore(aws_settings) as store:
        marker = EmailMarker(store, aws_settings.output_bucket, job_id)
        assert not await marker.exists()
        results = await asyncio.gather(*(marker.claim("ready") for _ in range(5)))
        assert sum(results) == 1 and await marker.exists()
        assert not await marker.claim("ready")


async def test_email_marker_recognises_its_own_token_after_a_retried_put(aws_settings: Settings, job_id: str) -> None:
    """A PUT that landed but whose answer was lost is retried and sees 412: still ours."""
    async with ObjectStore(aws_settings) as store:
        marker = EmailMarker(store, aws_settings.output_bucket, job_id)
        assert await marker.claim("ready", token="tok-1")
        assert await marker.claim("ready", token="tok-1")
        assert not await marker.claim("ready", token="tok-2")


# --- send once ---------------------------------------------------------------------------
async def test_send_once_sends_a_single_email_however_often_it_is_called(
        local_stack: LocalStack, aws_settings: Settings, job_id: str) -> None:
    before = set(local_stack.outbox_messages())
    sender = SmtpSender(local_stack.settings.smtp_host, local_stack.settings.smtp_port)
    msg = build_message(render_email("failed", {"job_id": job_id, "reason": "x"}),
                        aws_settings.email_sender, ADDRESS, job_id=job_id)
    async with ObjectStore(aws_settings) as store:
        marker = EmailMarker(store, aws_settings.output_bucket, job_id)
        with structlog.testing.capture_logs() as logs:
            results = [await send_once(marker, sender, msg, "failed") for _ in range(3)]
        assert await marker.exists()
    assert results == [True, False, False]
    new = [p for p in set(local_stack.outbox_messages()) - before
           if email.message_from_bytes(p.read_bytes())["X-Headshots-Job"] == job_id]
    assert len(new) == 1
    assert ADDRESS not in repr(logs) and [e["event"] for e in logs].count("email_sent") == 1


async def test_failed_send_removes_the_marker_so_a_retry_can_notify(
        local_stack: LocalStack, aws_settings: Settings, job_id: str, tmp_path: Path) -> None:
    from processor.aws.retry import RetryPolicy
    from processor.devkit.local_stack import free_port

    dead = SmtpSender("127.0.0.1", free_port(), timeout_s=1,
                      policy=RetryPolicy(attempts=2, initial_s=0.01, max_wait_s=0.01, jitter_s=0.01))
    live = SmtpSender(local_stack.settings.smtp_host, local_stack.settings.smtp_port)
    msg = build_message(render_email("failed", {"job_id": job_id, "reason": "x"}),
                        aws_settings.email_sender, ADDRESS, job_id=job_id)
    async with ObjectStore(aws_settings) as store:
        marker = EmailMarker(store, aws_settings.output_bucket, job_id)
        with pytest.raises(ConnectionRefusedError):
            await send_once(marker, dead, msg, "failed")
        assert not await marker.exists()
        assert await send_once(marker, live, msg, "failed")

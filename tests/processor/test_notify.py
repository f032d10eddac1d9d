"""The job's one email: what it says about selection, the send-once marker, sending once."""

from __future__ import annotations

import asyncio
import email
from pathlib import Path

import pytest
import structlog

from processor.aws.retry import RetryPolicy
from processor.aws.storage import ObjectStore
from processor.devkit.local_stack import LocalStack, free_port
from processor.devkit.smtp_fault_proxy import SmtpFaultProxy
from processor.email import build_message, render_email
from processor.errors import LostOwnership
from processor.job.fence import Fence
from processor.notify import EmailMarker, MarkerState, selection_note, send_once, send_patiently
from processor.send_rule import SendFailed, Verdict
from processor.senders import SmtpSender
from processor.settings import Settings
from tests.fixtures.smtp_peers import SmtpPeer

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
        assert sum(1 for r in results if r) == 1 and await marker.exists()
        assert not await marker.claim("ready")


async def test_email_marker_recognises_its_own_token_after_a_retried_put(aws_settings: Settings, job_id: str) -> None:
    """A PUT that landed but whose answer was lost is retried and sees 412: still ours."""
    async with ObjectStore(aws_settings) as store:
        marker = EmailMarker(store, aws_settings.output_bucket, job_id)
        assert await marker.claim("ready", token="tok-1")
        assert await marker.claim("ready", token="tok-1")
        assert not await marker.claim("ready", token="tok-2")


# --- send once ---------------------------------------------------------------------------
def _msg(settings: Settings, job_id: str):  # noqa: ANN202
    return build_message(render_email("failed", {"job_id": job_id, "reason": "x"}),
                         settings.email_sender, ADDRESS, job_id=job_id)


def _sent_to_sink(local_stack: LocalStack, before: set, job_id: str) -> int:
    return len([p for p in set(local_stack.outbox_messages()) - before
                if email.message_from_bytes(p.read_bytes())["X-Headshots-Job"] == job_id])


QUICK = RetryPolicy(attempts=2, initial_s=0.01, max_wait_s=0.01, jitter_s=0.01)


async def test_send_once_sends_a_single_email_however_often_it_is_called(
        local_stack: LocalStack, aws_settings: Settings, job_id: str) -> None:
    before = set(local_stack.outbox_messages())
    sender = SmtpSender(local_stack.settings.smtp_host, local_stack.settings.smtp_port)
    async with ObjectStore(aws_settings) as store:
        marker = EmailMarker(store, aws_settings.output_bucket, job_id)
        with structlog.testing.capture_logs() as logs:
            results = [await send_once(marker, sender, _msg(aws_settings, job_id), "failed") for _ in range(3)]
        record, _ = await marker.read()  # type: ignore[misc]
    assert results == ["sent", "sent", "sent"] and record.state is MarkerState.SENT
    assert _sent_to_sink(local_stack, before, job_id) == 1
    events = [e["event"] for e in logs]
    assert ADDRESS not in repr(logs) and events.count("email_sent") == 1 and events.count("email_already_sent") == 2


async def test_a_send_that_certainly_failed_leaves_the_marker_failed_so_a_retry_can_notify(
        local_stack: LocalStack, aws_settings: Settings, job_id: str, tmp_path: Path) -> None:
    from processor.devkit.local_stack import free_port

    before = set(local_stack.outbox_messages())
    dead = SmtpSender("127.0.0.1", free_port(), timeout_s=1, policy=QUICK)
    live = SmtpSender(local_stack.settings.smtp_host, local_stack.settings.smtp_port)
    async with ObjectStore(aws_settings) as store:
        marker = EmailMarker(store, aws_settings.output_bucket, job_id)
        with pytest.raises(SendFailed):
            await send_once(marker, dead, _msg(aws_settings, job_id), "failed")
        assert (await marker.read())[0].state is MarkerState.FAILED  # type: ignore[index]
        assert await send_once(marker, live, _msg(aws_settings, job_id), "failed") == "sent"
    assert _sent_to_sink(local_stack, before, job_id) == 1


async def test_a_refused_recipient_is_a_certain_failure_not_an_unknown(
        aws_settings: Settings, job_id: str, smtp_refuses_recipients: SmtpPeer) -> None:
    sender = SmtpSender("127.0.0.1", smtp_refuses_recipients.port, timeout_s=5, policy=QUICK)
    async with ObjectStore(aws_settings) as store:
        marker = EmailMarker(store, aws_settings.output_bucket, job_id)
        with pytest.raises(SendFailed) as err:
            await send_once(marker, sender, _msg(aws_settings, job_id), "failed")
        assert err.value.verdict is Verdict.FAILED
        assert (await marker.read())[0].state is MarkerState.FAILED  # type: ignore[index]
    assert smtp_refuses_recipients.received == []


async def test_a_connection_lost_after_the_data_is_unknown_never_retried_and_alarmed(
        aws_settings: Settings, job_id: str, smtp_drops_after_data: SmtpPeer) -> None:
    sender = SmtpSender("127.0.0.1", smtp_drops_after_data.port, timeout_s=5)  # default: 6 tries
    async with ObjectStore(aws_settings) as store:
        marker = EmailMarker(store, aws_settings.output_bucket, job_id)
        with structlog.testing.capture_logs() as logs:
            first = await send_once(marker, sender, _msg(aws_settings, job_id), "failed")
            again = await send_once(marker, sender, _msg(aws_settings, job_id), "failed")
        assert (await marker.read())[0].state is MarkerState.UNKNOWN  # type: ignore[index]
    assert (first, again) == ("unknown", "unknown")
    assert len(smtp_drops_after_data.received) == 1  # the server got it once: no retry, no resend
    assert [e["event"] for e in logs].count("email_unknown") == 1 and ADDRESS not in repr(logs)


async def test_a_marker_left_sending_by_a_dead_attempt_is_unknown_and_nothing_is_sent(
        local_stack: LocalStack, aws_settings: Settings, job_id: str) -> None:
    before = set(local_stack.outbox_messages())
    live = SmtpSender(local_stack.settings.smtp_host, local_stack.settings.smtp_port)
    async with ObjectStore(aws_settings) as store:
        marker = EmailMarker(store, aws_settings.output_bucket, job_id)
        assert await marker.claim("ready", token="dead-attempt", epoch=1)  # then it was killed
        with structlog.testing.capture_logs() as logs:
            outcome = await send_once(marker, live, _msg(aws_settings, job_id), "failed", Fence(job_id, 2))
        assert (await marker.read())[0].state is MarkerState.UNKNOWN  # type: ignore[index]
        key = marker.key
    assert outcome == "unknown" and _sent_to_sink(local_stack, before, job_id) == 0
    assert any(e["event"] == "email_unknown" for e in logs)
    # written under the judging attempt's lease (2), not the dead claim's (1): the fault bench's
    # write audit counted it as a stale write
    head = local_stack.client("s3", aws_settings).head_object(Bucket=aws_settings.output_bucket, Key=key)
    assert head["Metadata"]["headshots-epoch"] == "2"


async def test_a_worker_that_lost_its_lease_sends_nothing_and_claims_nothing(
        local_stack: LocalStack, aws_settings: Settings, job_id: str) -> None:
    before = set(local_stack.outbox_messages())
    live = SmtpSender(local_stack.settings.smtp_host, local_stack.settings.smtp_port)
    fence = Fence(job_id, epoch=3)
    fence.close()
    async with ObjectStore(aws_settings) as store:
        marker = EmailMarker(store, aws_settings.output_bucket, job_id)
        with pytest.raises(LostOwnership):
            await send_once(marker, live, _msg(aws_settings, job_id), "failed", fence)
        assert not await marker.exists()
    assert _sent_to_sink(local_stack, before, job_id) == 0


async def test_a_relay_that_failed_the_quit_after_250_records_sent_and_the_next_attempt_sends_nothing(
        local_stack: LocalStack, aws_settings: Settings, job_id: str) -> None:
    before = set(local_stack.outbox_messages())
    s = local_stack.settings
    with SmtpFaultProxy(s.smtp_host, s.smtp_port, mode="quit_fails", first=5) as relay:
        sender = SmtpSender(relay.host, relay.port, timeout_s=5)
        async with ObjectStore(aws_settings) as store:
            marker = EmailMarker(store, aws_settings.output_bucket, job_id)
            first = await send_once(marker, sender, _msg(aws_settings, job_id), "failed")
            again = await send_once(marker, sender, _msg(aws_settings, job_id), "failed")
            assert (await marker.read())[0].state is MarkerState.SENT  # type: ignore[index]
    assert (first, again) == ("sent", "sent") and _sent_to_sink(local_stack, before, job_id) == 1


async def test_a_stale_attempt_cannot_overwrite_the_marker_the_current_one_wrote(
        aws_settings: Settings, job_id: str) -> None:
    """Every marker write after the claim is If-Match the claim's ETag."""
    from processor.notify import MarkerRecord
    async with ObjectStore(aws_settings) as store:
        marker = EmailMarker(store, aws_settings.output_bucket, job_id)
        old_etag = await marker.claim("ready", token="old", epoch=1)
        record, etag = (await marker.read())  # type: ignore[misc]
        await marker.set(record, MarkerState.UNKNOWN, etag=etag)  # the next owner judged it
        from processor.errors import PreconditionFailed
        with pytest.raises(PreconditionFailed):
            await marker.set(MarkerRecord("ready", "old", 1, MarkerState.SENDING), MarkerState.FAILED,
                             etag=old_etag or "")
        assert (await marker.read())[0].state is MarkerState.UNKNOWN  # type: ignore[index]


async def test_a_certain_failure_is_retried_within_the_window_and_sent_once_the_relay_is_back(
        local_stack: LocalStack, aws_settings: Settings, job_id: str) -> None:
    before = set(local_stack.outbox_messages())
    port = free_port()
    s = local_stack.settings
    sender = SmtpSender("127.0.0.1", port, timeout_s=2, policy=QUICK)
    async with ObjectStore(aws_settings) as store:
        marker = EmailMarker(store, aws_settings.output_bucket, job_id)

        relays: list[SmtpFaultProxy] = []

        async def relay_back_later() -> None:
            await asyncio.sleep(1.5)
            relays.append(SmtpFaultProxy(s.smtp_host, s.smtp_port, mode="quit_fails", first=0, port=port).__enter__())
        back = asyncio.create_task(relay_back_later())
        try:
            outcome = await send_patiently(
                lambda: send_once(marker, sender, _msg(aws_settings, job_id), "failed"),
                job_id, window_s=20, first_delay_s=0.5)
            await back
        finally:
            for relay in relays:
                relay.__exit__()
    assert outcome == "sent" and _sent_to_sink(local_stack, before, job_id) == 1


async def test_past_the_window_a_certain_failure_is_raised_for_the_caller_to_record(
        aws_settings: Settings, job_id: str) -> None:
    sender = SmtpSender("127.0.0.1", free_port(), timeout_s=1, policy=QUICK)
    async with ObjectStore(aws_settings) as store:
        marker = EmailMarker(store, aws_settings.output_bucket, job_id)
        with pytest.raises(SendFailed):
            await send_patiently(lambda: send_once(marker, sender, _msg(aws_settings, job_id), "failed"),
                                 job_id, window_s=1.0, first_delay_s=0.3)
        assert (await marker.read())[0].state is MarkerState.FAILED  # type: ignore[index]

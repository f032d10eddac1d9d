"""The SES and SMTP backends against real endpoints (the local stack, rude proxies, misbehaving
SMTP peers), judged by the one send rule: sent, retried, failed, or unknown and never resent."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from processor.aws.retry import RetryPolicy
from processor.devkit.fault_proxy import Fault, FaultProxy
from processor.devkit.local_stack import LocalStack, free_port
from processor.devkit.smtp_fault_proxy import SmtpFaultProxy
from processor.email import build_message, render_email
from processor.send_rule import SendFailed, Verdict
from processor.senders import SesSender, SmtpSender, make_sender
from processor.smtp import data_payload
from processor.settings import Settings
from tests.fixtures.smtp_peers import SmtpPeer

ADDRESS = "ada.lovelace@example.com"
QUICK = RetryPolicy(attempts=2, initial_s=0.01, max_wait_s=0.01, jitter_s=0.01)


def _msg(settings: Settings, job_id: str = "j") -> EmailMessage:
    return build_message(render_email("failed", {"job_id": job_id, "reason": "x"}), settings.email_sender,
                         ADDRESS, job_id=job_id)


def _outbox_count(stack: LocalStack, job_id: str) -> int:
    return sum(1 for p in stack.outbox_messages()
               if email.message_from_bytes(p.read_bytes(), policy=email.policy.default)["X-Headshots-Job"] == job_id)


# --- SES ---------------------------------------------------------------------------------
async def test_ses_sender_is_recorded_by_the_local_ses(local_stack: LocalStack, aws_settings: Settings) -> None:
    settings = aws_settings.model_copy(update={"email_backend": "ses"})
    sender = make_sender(settings)
    assert isinstance(sender, SesSender)
    message_id = await sender.send(_msg(settings, "ses-1"))
    [sent] = [m for m in local_stack.ses_sent_messages() if m.message_id == message_id]
    assert sent.source == settings.email_sender and ADDRESS in sent.destinations[0]


async def test_ses_refusing_an_unverified_sender_is_a_certain_failure(aws_settings: Settings) -> None:
    settings = aws_settings.model_copy(update={"email_backend": "ses", "email_sender": "x@unverified.example"})
    with pytest.raises(SendFailed) as err:
        await SesSender(settings).send(_msg(settings))
    assert err.value.verdict is Verdict.FAILED


@pytest.mark.parametrize("kind", ["reset_after", "drop_after", "hang"])
async def test_ses_that_had_the_whole_request_then_lost_the_answer_is_unknown_and_never_retried(
        kind: str, local_stack: LocalStack, aws_settings: Settings) -> None:
    """A reset after SES received the request reads as "no connection" to aiobotocore; sending
    again mailed the person up to six times."""
    before = len(local_stack.ses_sent_messages())
    with FaultProxy(local_stack.endpoint_url, faults=[Fault("ses", kind, first=1, seconds=0.2)]) as proxy:
        settings = aws_settings.model_copy(update={"email_backend": "ses", "aws_endpoint_url": proxy.url})
        with pytest.raises(SendFailed) as err:
            await SesSender(settings).send(_msg(settings))
        forwarded = dict(proxy.counts.forwarded)
    assert err.value.verdict is Verdict.UNKNOWN
    assert forwarded.get("ses") == 1  # one request, no retry
    assert len(local_stack.ses_sent_messages()) == before + 1


async def test_ses_throttling_is_retried_because_nothing_was_sent(
        local_stack: LocalStack, aws_settings: Settings) -> None:
    before = len(local_stack.ses_sent_messages())
    with FaultProxy(local_stack.endpoint_url, fail_first={"ses": 2}) as proxy:
        settings = aws_settings.model_copy(update={"email_backend": "ses", "aws_endpoint_url": proxy.url})
        assert await SesSender(settings).send(_msg(settings))
        injected = dict(proxy.counts.injected)
    assert injected.get("ses") == 2 and len(local_stack.ses_sent_messages()) == before + 1


async def test_ses_with_no_connection_at_all_is_retried_then_a_certain_failure(aws_settings: Settings) -> None:
    settings = aws_settings.model_copy(update={"email_backend": "ses",
                                               "aws_endpoint_url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(SendFailed) as err:
        await SesSender(settings, policy=QUICK).send(_msg(settings))
    assert err.value.verdict is Verdict.RETRY  # retries exhausted: certainly not sent


# --- SMTP --------------------------------------------------------------------------------
async def test_smtp_sender_delivers_to_the_sink_which_writes_an_eml(local_stack: LocalStack) -> None:
    s = local_stack.settings
    await SmtpSender(s.smtp_host, s.smtp_port).send(_msg(s, "smtp-1"))
    assert _outbox_count(local_stack, "smtp-1") == 1


async def test_a_relay_that_said_250_then_failed_the_quit_has_sent_the_message(local_stack: LocalStack) -> None:
    """smtplib's exit raised on the 421, the marker said failed, and the next attempt sent again."""
    s = local_stack.settings
    with SmtpFaultProxy(s.smtp_host, s.smtp_port, mode="quit_fails", first=5) as relay:
        assert await SmtpSender(relay.host, relay.port).send(_msg(s, "smtp-quit"))
        assert relay.faults == 1 and relay.conversations == 1
    assert _outbox_count(local_stack, "smtp-quit") == 1


async def test_a_reset_after_the_data_reached_the_relay_is_unknown_and_never_retried(local_stack: LocalStack) -> None:
    s = local_stack.settings
    with SmtpFaultProxy(s.smtp_host, s.smtp_port, mode="reset_after_data", first=5) as relay:
        with pytest.raises(SendFailed) as err:
            await SmtpSender(relay.host, relay.port, timeout_s=5).send(_msg(s, "smtp-reset"))
        assert relay.conversations == 1
    assert err.value.verdict is Verdict.UNKNOWN
    assert _outbox_count(local_stack, "smtp-reset") == 1


async def test_a_connection_lost_after_the_data_without_a_reply_is_unknown(smtp_drops_after_data: SmtpPeer) -> None:
    with pytest.raises(SendFailed) as err:
        await SmtpSender("127.0.0.1", smtp_drops_after_data.port, timeout_s=5).send(_msg(Settings()))
    assert err.value.verdict is Verdict.UNKNOWN and len(smtp_drops_after_data.received) == 1


async def test_a_refused_recipient_is_a_certain_failure_never_retried(smtp_refuses_recipients: SmtpPeer) -> None:
    with pytest.raises(SendFailed) as err:
        await SmtpSender("127.0.0.1", smtp_refuses_recipients.port, timeout_s=5).send(_msg(Settings()))
    assert err.value.verdict is Verdict.FAILED and smtp_refuses_recipients.received == []


async def test_no_smtp_server_is_retried_then_a_certain_failure() -> None:
    with pytest.raises(SendFailed) as err:
        await SmtpSender("127.0.0.1", free_port(), timeout_s=1, policy=QUICK).send(_msg(Settings()))
    assert err.value.verdict is Verdict.RETRY


def test_the_data_payload_doubles_leading_dots_and_ends_with_the_final_dot() -> None:
    msg = EmailMessage()
    msg["Subject"] = "x"
    msg.set_content(".hidden line\nnormal\n.\n")
    payload = data_payload(msg)
    assert b"\r\n..hidden line\r\n" in payload and b"\r\n..\r\n" in payload
    assert payload.endswith(b"\r\n.\r\n") and b"\n" not in payload.replace(b"\r\n", b"")

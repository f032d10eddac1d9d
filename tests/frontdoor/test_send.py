"""The front door's code email under the worker's send rule: a reset after SES took the request,
or a relay that failed the QUIT after its 250, never sends a second code email; only what
certainly did not go out is tried again. Real endpoints: the local stack's SES and SMTP sink,
behind the rude proxies the worker's senders are tested with."""

from __future__ import annotations

import email
import email.policy

import pytest

from frontdoor.aws import FrontDoorAws
from frontdoor.proof import proof_message
from processor.devkit.fault_proxy import Fault, FaultProxy
from processor.devkit.local_stack import LocalStack
from processor.devkit.smtp_fault_proxy import SmtpFaultProxy
from processor.send_rule import SendFailed, Verdict
from processor.settings import Settings

ADDRESS = "code.owner@example.com"


def _message(settings: Settings, job_id: str):  # noqa: ANN202
    return proof_message(settings.email_sender, ADDRESS, "123456", job_id, 30)


def _sink_count(stack: LocalStack, job_id: str) -> int:
    return sum(1 for p in stack.outbox_messages()
               if job_id in email.message_from_bytes(p.read_bytes(), policy=email.policy.default).as_string())


def test_a_reset_after_ses_took_the_code_email_is_unknown_and_never_sent_again(
        local_stack: LocalStack, aws_settings: Settings) -> None:
    """botocore's own retries sent it again: the person got two codes (and the job 503'd)."""
    before = len(local_stack.ses_sent_messages())
    with FaultProxy(local_stack.endpoint_url, faults=[Fault("ses", "reset_after", first=1)]) as proxy:
        settings = aws_settings.model_copy(update={"email_backend": "ses", "aws_endpoint_url": proxy.url})
        with pytest.raises(SendFailed) as err:
            FrontDoorAws(settings).send_email(_message(settings, "job-reset"))
        forwarded = dict(proxy.counts.forwarded)
    assert err.value.verdict is Verdict.UNKNOWN
    assert forwarded.get("ses") == 1
    assert len(local_stack.ses_sent_messages()) == before + 1


def test_ses_throttling_is_tried_again_because_nothing_was_sent(
        local_stack: LocalStack, aws_settings: Settings) -> None:
    before = len(local_stack.ses_sent_messages())
    with FaultProxy(local_stack.endpoint_url, fail_first={"ses": 2}) as proxy:
        settings = aws_settings.model_copy(update={"email_backend": "ses", "aws_endpoint_url": proxy.url})
        FrontDoorAws(settings).send_email(_message(settings, "job-throttled"))
    assert len(local_stack.ses_sent_messages()) == before + 1


def test_a_relay_that_fails_the_quit_after_its_250_has_sent_the_code_email(
        local_stack: LocalStack, aws_settings: Settings) -> None:
    """smtplib's context exit raised on the failed QUIT: the job answered 503 and the person,
    trying again, got a second code."""
    s = local_stack.settings
    with SmtpFaultProxy(s.smtp_host, s.smtp_port, mode="quit_fails", first=5) as relay:
        settings = aws_settings.model_copy(update={"email_backend": "smtp", "smtp_host": relay.host,
                                                   "smtp_port": relay.port})
        FrontDoorAws(settings).send_email(_message(settings, "job-quit"))
        assert relay.faults == 1 and relay.conversations == 1
    assert _sink_count(local_stack, "job-quit") == 1


def test_a_job_whose_code_email_may_have_gone_is_created_and_never_mailed_twice(
        local_stack: LocalStack, aws_settings: Settings) -> None:
    """The person may hold the code: the job answers 201 with its ticket (it answered 503, and
    the person's retry sent a second code)."""
    from tests.frontdoor.client import photo_specs, post_json

    before = len(local_stack.ses_sent_messages())
    with FaultProxy(local_stack.endpoint_url, faults=[Fault("ses", "reset_after", first=1)]) as proxy:
        settings = local_stack.mount_frontdoor(
            aws_settings.model_copy(update={"email_backend": "ses", "aws_endpoint_url": proxy.url}), "ses-reset")
        created = post_json(f"{settings.frontdoor_url}/api/jobs", {"email": ADDRESS, "name": "Ada",
                                                                         "photos": photo_specs(12)})
    assert created.status == 201, created.text
    assert created.json()["ticket"]
    assert len(local_stack.ses_sent_messages()) == before + 1

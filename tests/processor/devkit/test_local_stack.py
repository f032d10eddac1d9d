"""The embedded stack: the real S3 -> SQS event path, redrive, SES, SMTP sink, child processes."""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import sys
from email.message import EmailMessage

import pytest

from processor.devkit.local_stack import LocalStack, settings_env
from processor.manifest import job_id_from_key, parse_s3_event
from processor.settings import Settings

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def receive_all(stack: LocalStack, settings: Settings, wait: int = 1) -> list[dict]:
    sqs = stack.client("sqs", settings)
    return sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
                               MessageSystemAttributeNames=["ApproximateReceiveCount"]).get("Messages", [])


def test_manifest_upload_sends_exactly_one_event_with_the_right_key(local_stack: LocalStack,
                                                                    aws_settings: Settings) -> None:
    s3 = local_stack.client("s3", aws_settings)
    job = "Ada Lovelace+1"  # spaces and '+' arrive URL-encoded (and this id is invalid: by design)
    for name in ("a.jpg", "b.jpg"):
        s3.put_object(Bucket=aws_settings.input_bucket, Key=f"uploads/{job}/{name}", Body=b"jpeg")
    s3.put_object(Bucket=aws_settings.input_bucket, Key="elsewhere/manifest.json", Body=b"{}")
    s3.put_object(Bucket=aws_settings.input_bucket, Key=f"uploads/{job}/manifest.json", Body=b"{}")
    messages = receive_all(local_stack, aws_settings)
    assert len(messages) == 1
    assert "Ada+Lovelace%2B1" in messages[0]["Body"]  # S3's own encoding on the wire
    event = parse_s3_event(messages[0]["Body"])
    assert [(o.bucket, o.key) for o in event.objects] == [
        (aws_settings.input_bucket, f"uploads/{job}/manifest.json")]
    assert receive_all(local_stack, aws_settings, wait=0) == []


def test_valid_job_key_round_trips_from_upload_to_job_id(local_stack: LocalStack, aws_settings: Settings) -> None:
    s3 = local_stack.client("s3", aws_settings)
    s3.put_object(Bucket=aws_settings.input_bucket, Key="uploads/job_2024-01.x/manifest.json", Body=b"{}")
    [msg] = receive_all(local_stack, aws_settings)
    [ref] = parse_s3_event(msg["Body"]).objects
    assert job_id_from_key(ref.key) == "job_2024-01.x"


def test_queue_starts_empty_without_the_s3_test_event(local_stack: LocalStack, aws_settings: Settings) -> None:
    assert receive_all(local_stack, aws_settings, wait=0) == []


def test_unacknowledged_message_lands_in_the_dlq_after_three_receives(local_stack: LocalStack,
                                                                       aws_settings: Settings) -> None:
    sqs = local_stack.client("sqs", aws_settings)
    attrs = sqs.get_queue_attributes(QueueUrl=aws_settings.queue_url, AttributeNames=["RedrivePolicy"])
    assert json.loads(attrs["Attributes"]["RedrivePolicy"])["maxReceiveCount"] in (3, "3")
    sqs.send_message(QueueUrl=aws_settings.queue_url, MessageBody="not json")
    counts = []
    for _ in range(3):
        [msg] = receive_all(local_stack, aws_settings)
        counts.append(int(msg["Attributes"]["ApproximateReceiveCount"]))
        sqs.change_message_visibility(QueueUrl=aws_settings.queue_url, ReceiptHandle=msg["ReceiptHandle"],
                                      VisibilityTimeout=0)
    assert counts == [1, 2, 3]
    assert receive_all(local_stack, aws_settings) == []
    assert [m.body for m in local_stack.dlq_messages(aws_settings)] == ["not json"]


def test_queue_policy_lets_only_the_input_bucket_send(local_stack: LocalStack, aws_settings: Settings) -> None:
    sqs = local_stack.client("sqs", aws_settings)
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=aws_settings.queue_url,
                                                 AttributeNames=["Policy"])["Attributes"]["Policy"])
    [stmt] = policy["Statement"]
    assert stmt["Principal"] == {"Service": "s3.amazonaws.com"}
    assert stmt["Condition"]["ArnEquals"]["aws:SourceArn"] == f"arn:aws:s3:::{aws_settings.input_bucket}"


def test_smtp_sink_writes_each_message_as_a_numbered_eml(local_stack: LocalStack) -> None:
    before = set(local_stack.outbox_messages())
    for subject in ("Hello there!", "Second: one"):
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = subject, "a@example.com", "b@example.com"
        msg.set_content("body")
        with smtplib.SMTP(local_stack.settings.smtp_host, local_stack.settings.smtp_port, timeout=10) as smtp:
            smtp.send_message(msg)
    new = sorted(set(local_stack.outbox_messages()) - before)
    assert [p.name.split("-", 1)[1] for p in new] == ["hello-there.eml", "second-one.eml"]
    assert int(new[1].name.split("-")[0]) == int(new[0].name.split("-")[0]) + 1
    assert b"Subject: Hello there!" in new[0].read_bytes()


def test_ses_sender_identity_is_verified(local_stack: LocalStack, aws_settings: Settings) -> None:
    ses = local_stack.client("ses", aws_settings)
    assert aws_settings.email_sender in ses.list_verified_email_addresses()["VerifiedEmailAddresses"]


def test_settings_env_reproduces_the_settings_in_a_child_process(local_stack: LocalStack,
                                                                aws_settings: Settings) -> None:
    """A worker child process needs only the environment to reach the stack."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADSHOTS_", "AWS_"))}
    env.update(local_stack.settings_env(aws_settings))
    local_stack.client("s3", aws_settings).put_object(Bucket=aws_settings.output_bucket, Key="probe", Body=b"hi")
    code = (
        "import json; from processor.settings import load_settings; from processor.devkit.local_stack import LocalStack\n"
        "s = load_settings(); stack = LocalStack.attach(s)\n"
        "body = stack.client('s3').get_object(Bucket=s.output_bucket, Key='probe')['Body'].read()\n"
        "print(json.dumps({'body': body.decode(), 'settings': s.model_dump(mode='json')}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["body"] == "hi"
    assert result["settings"] == aws_settings.model_dump(mode="json")


def test_settings_env_names_are_headshots_variables(aws_settings: Settings) -> None:
    env = settings_env(aws_settings)
    assert all(k.startswith("HEADSHOTS_") for k in env)
    assert env["HEADSHOTS_QUEUE_URL"] == aws_settings.queue_url
    assert env["HEADSHOTS_TRAIN_TEXT_ENCODER"] == "false"


def test_attached_handle_cannot_read_ses_mail_and_does_not_stop_the_server(local_stack: LocalStack) -> None:
    with LocalStack.attach(local_stack.settings) as handle:
        assert handle.endpoint_url == local_stack.endpoint_url
        with pytest.raises(RuntimeError):
            handle.ses_sent_messages()
    assert local_stack.client("s3").list_buckets()["Buckets"]  # still serving
    with pytest.raises(ValueError):
        LocalStack.attach(Settings())


async def test_stack_can_be_started_and_stopped_from_async_code(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import urllib.request

    async with LocalStack(Settings(email_backend="smtp"), outbox=tmp_path / "outbox") as stack:
        url = stack.endpoint_url
        s3 = stack.client("s3")
        assert {b["Name"] for b in s3.list_buckets()["Buckets"]} >= {"headshots-input", "headshots-output"}
        assert stack.settings.queue_url.endswith("/headshots-jobs")
        assert stack.settings.dlq_url.endswith("/headshots-jobs-dlq")
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)  # noqa: S310


def test_operator_client_rides_out_transient_server_errors(local_stack: LocalStack,
                                                           aws_settings: Settings) -> None:
    """Test polls read status while workers write it; a transient 5xx must not fail the test."""
    from processor.devkit.fault_proxy import FaultProxy

    local_stack.client("s3", aws_settings).put_object(Bucket=aws_settings.output_bucket,
                                                      Key="probe.json", Body=b"{}")
    with FaultProxy(aws_settings.aws_endpoint_url or "", rates={}, fail_first={"s3": 2}) as proxy:
        via_proxy = aws_settings.model_copy(update={"aws_endpoint_url": proxy.url})
        body = local_stack.client("s3", via_proxy).get_object(
            Bucket=aws_settings.output_bucket, Key="probe.json")["Body"].read()
        assert body == b"{}"
        assert proxy.counts.injected == {"s3": 2}

"""The fault-injecting proxy: AWS-shaped errors on the chosen share of calls, the rest forwarded."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from processor.devkit.fault_proxy import Fault, FaultProxy, signing_service
from processor.devkit.local_stack import LocalStack
from processor.settings import Settings


def test_signing_service_is_read_from_the_credential_scope() -> None:
    auth = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, SignedHeaders=host"
    assert signing_service(auth, "") == "s3"
    assert signing_service(None, "X-Amz-Credential=AKID%2F20260101%2Fus-east-1%2Fses%2Faws4_request") == "ses"
    assert signing_service(None, "") is None


def _s3(url: str, settings: Settings):  # noqa: ANN202
    return boto3.client("s3", endpoint_url=url, region_name=settings.aws_region,
                        config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                                      s3={"addressing_style": "path"}))


def test_injected_slowdown_is_a_503_and_other_calls_pass_through(aws_settings: Settings,
                                                                  local_stack: LocalStack) -> None:
    with FaultProxy(local_stack.endpoint_url, rates={}, fail_first={"s3": 1}) as proxy:
        s3 = _s3(proxy.url, aws_settings)
        with pytest.raises(ClientError) as err:
            s3.put_object(Bucket=aws_settings.output_bucket, Key="k", Body=b"hello")
        assert err.value.response["Error"]["Code"] == "SlowDown"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        s3.put_object(Bucket=aws_settings.output_bucket, Key="k", Body=b"hello")
        assert s3.get_object(Bucket=aws_settings.output_bucket, Key="k")["Body"].read() == b"hello"
        assert s3.head_object(Bucket=aws_settings.output_bucket, Key="k")["ContentLength"] == 5
        assert proxy.counts.injected == {"s3": 1} and proxy.counts.forwarded["s3"] == 3


# --- issue 20: as rude as AWS ------------------------------------------------------------
def _sqs(url: str, settings: Settings):  # noqa: ANN202
    return boto3.client("sqs", endpoint_url=url, region_name=settings.aws_region,
                        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))


def test_a_reset_after_the_request_landed_fails_the_caller_although_it_took_effect(
        aws_settings: Settings, local_stack: LocalStack) -> None:
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    reset = Fault("s3", "reset_after", operation="PutObject", first=1)
    with FaultProxy(local_stack.endpoint_url, faults=[reset]) as proxy:
        with pytest.raises((ConnectionClosedError, EndpointConnectionError)):  # urllib3's words; aiohttp's
            _s3(proxy.url, aws_settings).put_object(Bucket=aws_settings.output_bucket, Key="landed", Body=b"x")
    assert reset.fired == 1
    assert _s3(local_stack.endpoint_url, aws_settings).get_object(
        Bucket=aws_settings.output_bucket, Key="landed")["Body"].read() == b"x"


def test_sqs_faults_hit_only_their_operation_and_an_outage_ends(aws_settings: Settings,
                                                                 local_stack: LocalStack) -> None:
    with FaultProxy(local_stack.endpoint_url, faults=[Fault("sqs", "throttle", operation="ReceiveMessage",
                                                            first=1)]) as proxy:
        sqs = _sqs(proxy.url, aws_settings)
        with pytest.raises(ClientError) as err:
            sqs.receive_message(QueueUrl=aws_settings.queue_url, WaitTimeSeconds=0)
        assert err.value.response["Error"]["Code"] == "ThrottlingException"
        sqs.send_message(QueueUrl=aws_settings.queue_url, MessageBody="m")  # not its operation
        proxy.outage("sqs", 0.5)
        with pytest.raises(ClientError) as err:
            sqs.receive_message(QueueUrl=aws_settings.queue_url, WaitTimeSeconds=0)
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        import time
        time.sleep(0.6)
        assert sqs.receive_message(QueueUrl=aws_settings.queue_url, WaitTimeSeconds=1)["Messages"][0]["Body"] == "m"


def test_the_audit_counts_a_write_that_landed_on_a_lease_that_moved_on_and_one_without_an_epoch(
        aws_settings: Settings, local_stack: LocalStack) -> None:
    import json

    bucket = aws_settings.output_bucket
    _s3(local_stack.endpoint_url, aws_settings).put_object(
        Bucket=bucket, Key="jobs/j/status.json", Body=json.dumps({"lease_epoch": 2, "state": "training"}).encode())
    with FaultProxy(local_stack.endpoint_url, audit=True) as proxy:
        s3 = _s3(proxy.url, aws_settings)
        s3.put_object(Bucket=bucket, Key="jobs/j/work/a/e1/f", Body=b"x", Metadata={"headshots-epoch": "1"})
        s3.put_object(Bucket=bucket, Key="jobs/j/work/a/e2/f", Body=b"x", Metadata={"headshots-epoch": "2"})
        s3.put_object(Bucket=bucket, Key="jobs/j/work/a/e2/g", Body=b"x")
        s3.put_object(Bucket=bucket, Key="class-images/k/0.png", Body=b"x")  # not a job's key
        assert proxy.audit is not None
        assert [w.key for w in proxy.audit.stale] == ["jobs/j/work/a/e1/f"]
        assert [w.key for w in proxy.audit.unfenced] == ["jobs/j/work/a/e2/g"]

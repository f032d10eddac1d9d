"""The fault-injecting proxy: AWS-shaped errors on the chosen share of calls, the rest forwarded."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from processor.devkit.fault_proxy import FaultProxy, signing_service
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

"""The local front door: one HTTP server, one mount per resource set, the Lambda's own handler;
and an S3 that answers CORS by bucket rules (moto's allow-everything CORS is off)."""

from __future__ import annotations

import json

from processor.devkit.local_stack import LocalStack
from processor.settings import Settings
from tests.frontdoor.client import call


def test_each_resource_set_has_its_own_mount_and_unknown_mounts_are_404(
        local_stack: LocalStack, aws_settings: Settings) -> None:
    assert local_stack.settings.frontdoor_url == local_stack.frontdoor_origin  # the default set: at /
    assert aws_settings.frontdoor_url and aws_settings.frontdoor_url.startswith(local_stack.frontdoor_origin + "/_/")
    assert call(aws_settings.frontdoor_url + "/healthz").status == 200
    page = call(aws_settings.frontdoor_url + "/")
    assert page.status == 200 and f'href="{aws_settings.frontdoor_url.removeprefix(local_stack.frontdoor_origin)}/static/style.css"' in page.text
    assert call(local_stack.frontdoor_origin + "/_/no-such-set/healthz").status == 404


def test_s3_answers_cors_only_as_a_bucket_allows(local_stack: LocalStack, aws_settings: Settings) -> None:
    preflight = {"Origin": local_stack.frontdoor_origin, "Access-Control-Request-Method": "POST"}
    base = f"{aws_settings.aws_endpoint_url}/"
    allowed = call(base + aws_settings.input_bucket, headers=preflight, method="OPTIONS")
    assert allowed.headers.get("Access-Control-Allow-Origin") == local_stack.frontdoor_origin
    for bucket, origin in ((aws_settings.output_bucket, local_stack.frontdoor_origin),
                           (aws_settings.input_bucket, "https://evil.example")):
        answer = call(base + bucket, headers={**preflight, "Origin": origin}, method="OPTIONS")
        assert "Access-Control-Allow-Origin" not in answer.headers, (bucket, origin, answer.headers)
    cors = local_stack.client("s3", aws_settings).get_bucket_cors(Bucket=aws_settings.input_bucket)["CORSRules"]
    assert json.loads(json.dumps(cors)) == [{"AllowedHeaders": ["*"], "AllowedMethods": ["POST"],
                                            "AllowedOrigins": [local_stack.frontdoor_origin], "MaxAgeSeconds": 3000}]


def test_the_front_door_signs_with_its_own_iam_users_keys(local_stack: LocalStack, aws_settings: Settings) -> None:
    creds = local_stack.frontdoor_credentials
    keys = local_stack.client("iam").list_access_keys(UserName=creds["UserName"])["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [creds["AccessKeyId"]] and creds["AccessKeyId"] != "testing"

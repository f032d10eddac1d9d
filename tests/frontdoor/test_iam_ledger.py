"""The front door's IAM grants held to its code: every AWS call it makes, judged against the
policy its Terraform module renders (``processor.devkit.iam_ledger``, AWS's rules).

The module's role, policy, link key and rate-limit table are applied to the embedded moto
server (``-target``: no Lambda, whose zip and runtime this test does not need); a front door
served by the embedded stack then uses exactly that key and table, with its AWS calls going
through the ledger proxy, while a person creates a job, starts it, watches its status, opens
the gallery, downloads and rates. S3 reads and writes of SSE-KMS objects imply the service
key's Decrypt / GenerateDataKey, as in production (the buckets there are SSE-KMS).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from processor.devkit.fault_proxy import FaultProxy
from processor.devkit.iam_ledger import Call, check
from processor.devkit.local_stack import LocalStack
from processor.links import LinkSigner
from tests.frontdoor.client import call, deliver, post_form_upload, post_json
from tests.terraform.tf import REPO, apply_module

pytestmark = pytest.mark.skipif(shutil.which("terraform") is None,
                                reason="the terraform binary is not installed on this machine")

MODULE = REPO / "terraform" / "modules" / "frontdoor"
KMS = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"


@pytest.fixture(scope="module")
def applied(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    prefix = f"fd{uuid.uuid4().hex[:6]}"
    s3 = local_stack.client("s3")
    for bucket in (f"{prefix}-input", f"{prefix}-output"):
        s3.create_bucket(Bucket=bucket)
    work = tmp_path_factory.mktemp("tf-frontdoor")
    (work / "frontdoor.zip").write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # never deployed here
    _, outputs = apply_module(MODULE, work, local_stack.endpoint_url, local_stack.settings.aws_region,
                               {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}, {
        "name_prefix": prefix, "package_path": str(work / "frontdoor.zip"),
        "input_bucket_name": f"{prefix}-input", "input_bucket_arn": f"arn:aws:s3:::{prefix}-input",
        "output_bucket_name": f"{prefix}-output", "output_bucket_arn": f"arn:aws:s3:::{prefix}-output",
        "kms_key_arn": KMS, "public_url": "https://frontdoor.example", "results_retention_days": 7},
        targets=("aws_iam_role_policy.frontdoor", "aws_secretsmanager_secret_version.link_key"))
    # Not destroyed: the rate-limit table is deletion-protected (as in production), and all of it
    # goes with the session's moto server.
    yield {"prefix": prefix, "policy": json.loads(outputs["policy_json"]["value"]),
           "secret": outputs["link_secret_arn"]["value"], "table": outputs["rate_limit_table"]["value"]}


def test_every_call_the_front_door_makes_is_allowed_by_its_modules_policy(
        applied: dict[str, Any], local_stack: LocalStack) -> None:
    base = local_stack.provision(applied["prefix"])  # the buckets the module's policy names
    with FaultProxy(local_stack.endpoint_url, ledger=True) as proxy:
        settings = local_stack.mount_frontdoor(base.model_copy(update={
            "aws_endpoint_url": proxy.url, "link_secret_id": applied["secret"],
            "frontdoor_ratelimit_table": applied["table"]}), f"ledger-{applied['prefix']}")
        # A person: create a job, upload, start it; the worker delivers; status, gallery,
        # a download and a rating.
        job = post_json(f"{settings.frontdoor_url}/api/jobs", {"email": "ada@example.com", "name": "Ada", "photos": [
            {"name": f"IMG_{i}.jpg", "type": "image/jpeg", "size": 1000} for i in range(12)]}).json()
        for upload in job["uploads"]:
            assert post_form_upload(upload["url"], upload["fields"], b"\xff\xd8", upload["name"]).status == 204
        assert post_json(job["start_url"], {"ticket": job["ticket"]}).status == 202
        published = deliver(local_stack, base, job["job_id"], n=2)
        view = call(f"{settings.frontdoor_url}/api/jobs/{job['job_id']}/status",
                    headers={"Authorization": f"Bearer {job['token']}"}).json()
        assert view["state"] == "delivered" and call(view["gallery_url"]).status == 200
        key = local_stack.client("secretsmanager").get_secret_value(SecretId=applied["secret"])["SecretString"]
        sign = LinkSigner(key.encode(), settings.frontdoor_url or "")
        expires = int(published) + settings.link_ttl_s
        assert call(sign.download_url(job["job_id"], "headshot-001.jpg", expires)).status == 302
        gallery = call(sign.gallery_url(job["job_id"], expires))
        action = gallery.text.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        origin = urlsplit(settings.frontdoor_url or "")._replace(path="", query="").geturl()
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert call(origin + action, b"stars=5&favourite=headshot-002.jpg", form, "POST").status == 303
        calls = list(proxy.calls or [])
    sse = [Call({"s3:GetObject": "kms:Decrypt", "s3:PutObject": "kms:GenerateDataKey"}[c.action], KMS)
           for c in calls if c.action in ("s3:GetObject", "s3:PutObject")]
    report = check(applied["policy"], calls + sse)
    actions = {c.action for c in report.calls}
    assert {"s3:PutObject", "s3:GetObject", "secretsmanager:GetSecretValue", "dynamodb:UpdateItem"} <= actions
    (REPO / ".cache").mkdir(exist_ok=True)
    (REPO / ".cache" / "iam-ledger-frontdoor.json").write_text(json.dumps(
        {"calls": len(report.calls), "used": report.used, "unused": report.unused,
         "denied": [f"{c.action} {c.resource}: {why}" for c, why in report.denied]}, indent=1))
    assert report.denied == [], report.denied

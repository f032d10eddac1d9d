"""The front door's IAM grants held to its code: every AWS call it makes, judged against the
policy its Terraform module renders (``processor.devkit.iam_ledger``, AWS's rules).

The module's role, policy, link key and rate-limit table are applied to the embedded moto
server (``-target``: no Lambda, whose zip and runtime this test does not need); a front door
served by the embedded stack then uses exactly that key and table, with its AWS calls going
through the ledger proxy, while a person creates a job (the code email goes through SES),
proves the address, uploads, starts it, watches its status, opens the gallery, downloads and
rates. The proxy knows the role's policy, so it answers a read of a missing key as S3 does for
a role without s3:ListBucket there: 403, not moto's 404 (the queued job's status page).
S3 reads and writes of SSE-KMS objects imply the service key's Decrypt / GenerateDataKey
through S3, the secret's read a Decrypt through Secrets Manager, and each cold start a
Decrypt of the environment through Lambda, as in production.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from processor.devkit.fault_proxy import FaultProxy
from processor.devkit.iam_ledger import Call, check, evaluate
from processor.devkit.local_stack import LocalStack
from processor.links import LinkSigner
from tests.frontdoor.client import call, deliver, photo_specs, post_form_upload, post_json
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
        "kms_key_arn": KMS, "public_url": "https://frontdoor.example", "results_retention_days": 7,
        "email_sender": local_stack.settings.email_sender,
        "ses_identity_arn": f"arn:aws:ses:us-east-1:123456789012:identity/{local_stack.settings.email_sender}",
        "ses_configuration_set": f"{prefix}-mail"},
        targets=("aws_iam_role_policy.frontdoor", "aws_secretsmanager_secret_version.link_key"))
    # Not destroyed: the rate-limit table is deletion-protected (as in production), and all of it
    # goes with the session's moto server.
    yield {"prefix": prefix, "policy": json.loads(outputs["policy_json"]["value"]),
           "secret": outputs["link_secret_arn"]["value"], "table": outputs["rate_limit_table"]["value"]}


def test_every_call_the_front_door_makes_is_allowed_by_its_modules_policy(
        applied: dict[str, Any], local_stack: LocalStack) -> None:
    base = local_stack.provision(applied["prefix"])  # the buckets the module's policy names
    with FaultProxy(local_stack.endpoint_url, ledger=True, policy=applied["policy"]) as proxy:
        settings = local_stack.mount_frontdoor(base.model_copy(update={
            "aws_endpoint_url": proxy.url, "link_secret_id": applied["secret"], "email_backend": "ses",
            "frontdoor_ratelimit_table": applied["table"]}), f"ledger-{applied['prefix']}")
        # A person: create a job (the code goes out through SES), prove the address, upload,
        # start it; the status page while it waits; the worker delivers; status, gallery, a
        # download and a rating.
        created = post_json(f"{settings.frontdoor_url}/api/jobs", {"email": "ada@example.com", "name": "Ada",
                                                                   "photos": photo_specs(12)})
        assert created.status == 201, created.text
        pending = created.json()
        [mail] = [m for m in local_stack.ses_sent_messages() if f"X-Headshots-Proof: {pending['job_id']}" in m.raw]
        code = re.search(r"code: ([0-9]{6})", mail.raw).group(1)  # type: ignore[union-attr]
        job = post_json(pending["verify_url"], {"ticket": pending["ticket"], "code": code}).json()
        for upload in job["uploads"]:
            assert post_form_upload(upload["url"], upload["fields"], b"\xff\xd8", upload["name"]).status == 204
        assert post_json(job["start_url"], {"ticket": job["ticket"]}).status == 202
        status_url = f"{settings.frontdoor_url}/api/jobs/{job['job_id']}/status"
        bearer = {"Authorization": f"Bearer {job['token']}"}
        # Queued: no status.json yet. S3 answers the front door (no ListBucket on the output
        # bucket) 403 for it, as AWS does; the page must still say "queued", not fail.
        queued = call(status_url, headers=bearer)
        assert queued.status == 200 and queued.json()["state"] == "queued", queued.text
        key = local_stack.client("secretsmanager").get_secret_value(SecretId=applied["secret"])["SecretString"]
        sign = LinkSigner(key.encode(), settings.frontdoor_url or "")
        not_yet = call(sign.gallery_url(job["job_id"], int(time.time()) + 3600))
        assert not_yet.status == 410, not_yet.text  # results.json not there: the friendly page, not a 500
        published = deliver(local_stack, base, job["job_id"], n=2)
        view = call(status_url, headers=bearer).json()
        assert view["state"] == "delivered" and call(view["gallery_url"]).status == 200
        expires = int(published) + settings.link_ttl_s
        assert call(sign.download_url(job["job_id"], "headshot-001.jpg", expires)).status == 302
        assert call(sign.download_url(job["job_id"], "headshot-009.jpg", expires)).status == 410  # not there: 403 -> gone
        gallery = call(sign.gallery_url(job["job_id"], expires))
        action = gallery.text.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        origin = urlsplit(settings.frontdoor_url or "")._replace(path="", query="").geturl()
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert call(origin + action, b"stars=5&favourite=headshot-002.jpg", form, "POST").status == 303
        calls = list(proxy.calls or [])
    via = {"s3:GetObject": ("kms:Decrypt", "s3"), "s3:PutObject": ("kms:GenerateDataKey", "s3"),
           "secretsmanager:GetSecretValue": ("kms:Decrypt", "secretsmanager")}
    implied = [Call(via[c.action][0], KMS, (("kms:ViaService", f"{via[c.action][1]}.us-east-1.amazonaws.com"),))
               for c in calls if c.action in via]
    implied.append(Call("kms:Decrypt", KMS, (("kms:ViaService", "lambda.us-east-1.amazonaws.com"),)))  # a cold start
    report = check(applied["policy"], calls + implied)
    actions = {c.action for c in report.calls}
    assert {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "secretsmanager:GetSecretValue", "dynamodb:UpdateItem",
            "dynamodb:GetItem", "ses:SendRawEmail"} <= actions
    (REPO / ".cache").mkdir(exist_ok=True)
    (REPO / ".cache" / "iam-ledger-frontdoor.json").write_text(json.dumps(
        {"calls": len(report.calls), "used": report.used, "unused": report.unused,
         "denied": [f"{c.action} {c.resource}: {why}" for c, why in report.denied]}, indent=1))
    assert report.denied == [], report.denied
    assert set(report.unused) <= {"WriteOwnLogs"}, report.unused  # (the Lambda runtime writes the logs)


def test_the_key_is_refused_outside_its_services(applied: dict[str, Any]) -> None:
    """The policy's KMS grant holds only through the services that keep data under the key."""
    for service in ("s3", "secretsmanager", "lambda", "dynamodb"):
        call_ = Call("kms:Decrypt", KMS, (("kms:ViaService", f"{service}.us-east-1.amazonaws.com"),))
        assert evaluate(applied["policy"], call_).allowed, service
    for context in ((), (("kms:ViaService", "ec2.us-east-1.amazonaws.com"),)):
        assert not evaluate(applied["policy"], Call("kms:Decrypt", KMS, context)).allowed, context
        assert not evaluate(applied["policy"], Call("kms:GenerateDataKey", KMS, context)).allowed, context

"""IAM held to the code: a whole job delivered by workers that hold only the task role's rights.

The worker role and its policy are applied from ``terraform/modules/worker_iam`` to a moto
server that enforces IAM (``processor.devkit.iam_stack``; a test-only trusted principal lets
the test assume the role, as ECS would for the task), and worker processes run with the
role's temporary credentials from STS. The job meets a spot interruption on the way (SIGTERM
in training: the message is put back as a fresh copy) and the workers sweep the dead-letter
queue while idle, so the hand-back and the sweeper's calls are judged too.

Two layers: moto denies what the role may not do (it cannot judge SES and KMS by resource,
nor conditions the request lacks a key for, so email goes by SMTP here); and every call the
workers made is recorded at the HTTP edge (the ledger proxy) and judged against the policy
Terraform rendered, by AWS's rules (``processor.devkit.iam_ledger``). The second layer for SES
and KMS: ``tests/terraform/test_apply_local.py``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from processor.devkit.fault_proxy import FaultProxy
from processor.devkit.iam_ledger import check
from processor.devkit.iam_stack import EnforcedStack
from processor.devkit.local_stack import LocalStack
from processor.devkit.profiles import production_timing, tiny_model_settings
from processor.settings import Settings
from tests.integration.harness import (
    Fleet,
    emails_for,
    job_status,
    keys,
    queue_counts,
    submit,
    wait_for,
    wait_for_state,
)
from tests.terraform.tf import REPO, apply_module

pytestmark = pytest.mark.skipif(shutil.which("terraform") is None,
                                reason="the terraform binary is not installed on this machine")

MODULE = REPO / "terraform" / "modules" / "worker_iam"
ACCOUNT = "123456789012"


def worker_iam_vars(settings: Settings, queue_arn: str, dlq_arn: str, prefix: str) -> dict[str, Any]:
    region = settings.aws_region
    return {
        "name_prefix": prefix, "cluster_name": f"{prefix}-cluster",
        "input_bucket_arn": f"arn:aws:s3:::{settings.input_bucket}",
        "output_bucket_arn": f"arn:aws:s3:::{settings.output_bucket}",
        "queue_arn": queue_arn, "dlq_arn": dlq_arn,
        "kms_key_arn": f"arn:aws:kms:{region}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555",
        "ses_identity_arn": f"arn:aws:ses:{region}:{ACCOUNT}:identity/{settings.email_sender}",
        "ses_configuration_set": f"{prefix}-mail", "email_sender": settings.email_sender,
        "test_trusted_principals": [f"arn:aws:iam::{ACCOUNT}:user/admin"],  # moto does not read :root as the account
    }


@pytest.fixture(scope="module")
def enforced() -> Iterator[EnforcedStack]:
    with EnforcedStack() as stack:
        yield stack


@pytest.fixture(scope="module")
def role_job(enforced: EnforcedStack, local_stack: LocalStack, job_photos: Path, tiny_model_dir: Path,
             deepface_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The job, run once under the role; what the tests below judge."""
    root = tmp_path_factory.mktemp("iam-job")
    admin = LocalStack.attach(Settings(aws_endpoint_url=enforced.endpoint_url, email_backend="smtp"),
                              credentials=enforced.admin)
    settings = admin.provision("iam", **{
        **tiny_model_settings(tiny_model_dir, root / "cache", num_images=2, train_steps=12),
        **production_timing(), "dlq_sweep_interval_s": 1.0, "email_backend": "smtp",
        "smtp_host": local_stack.settings.smtp_host, "smtp_port": local_stack.settings.smtp_port,
        "deepface_home": deepface_home, "log_format": "json"})
    # The front door's link key (its Lambda is not part of this test): the worker reads it to
    # sign the links in the ready email, under the role's ReadLinkKey grant.
    key = admin.client("secretsmanager", settings).create_secret(Name="iam-link-key", SecretString="k" * 48)
    settings = settings.model_copy(update={"link_secret_id": key["ARN"], "frontdoor_url": "https://frontdoor.test"})
    sqs = admin.client("sqs", settings)

    def arn(url: str) -> str:
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    tf, outputs = apply_module(MODULE, root, enforced.endpoint_url, settings.aws_region, enforced.admin,
                               {**worker_iam_vars(settings, arn(settings.queue_url), arn(settings.dlq_url), "iamtest"),
                                "link_secret_arn": key["ARN"]})
    # moto reads a trust statement naming another principal (the ECS service) as a deny, and
    # stumbles on a Service principal: keep only the test-only statement Terraform added.
    trust = json.loads(outputs["trust_policy_json"]["value"])
    only_test = [s for s in trust["Statement"] if s.get("Sid") == "TestsOnlyAssumeRole"]
    enforced.client("iam").update_assume_role_policy(
        RoleName=outputs["role_name"]["value"], PolicyDocument=json.dumps({**trust, "Statement": only_test}))
    # Stand-ins for two places where moto judges by another resource than AWS does; the ledger
    # below judges the real statements by AWS's resources:
    # - Secrets Manager (like SES and KMS) against "*", so ReadLinkKey's ARN never matches;
    # - a multi-object delete (DeleteObjects) as s3:DeleteObject on the bucket, where AWS
    #   checks each key (ReadAndRemoveUploads, JobRecordsAndResults).
    enforced.client("iam").put_role_policy(
        RoleName=outputs["role_name"]["value"], PolicyName="moto-resource-stand-ins",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
            {"Effect": "Allow", "Action": "s3:DeleteObject",
             "Resource": [f"arn:aws:s3:::{settings.input_bucket}", f"arn:aws:s3:::{settings.output_bucket}"]}]}))
    role_credentials = enforced.assume(outputs["role_arn"]["value"])
    role = LocalStack.attach(settings, credentials=role_credentials)
    job_id = f"iam-{int(time.time())}"
    submit(settings, job_photos, "rae@example.com", job_id, credentials=enforced.admin)
    # The proxy knows the role's policy: a read of a missing key gets AWS's answer for it.
    with FaultProxy(enforced.endpoint_url, ledger=True, policy=json.loads(outputs["policy_json"]["value"])) as proxy:
        fleet = Fleet(role, settings.model_copy(update={"aws_endpoint_url": proxy.url}), root / "fleet", [])
        try:
            spot = fleet.start("spot", HEADSHOTS_FAILPOINTS="train.step=pause@3")
            wait_for(lambda: spot.paused or not spot.alive or (job_status(admin, settings, job_id) or {}).get(
                "state") in ("delivered", "failed"), 300, what="training, or the job's end", on_timeout=spot.logs)
            if spot.paused:
                spot.terminate()  # a spot interruption: the job goes back as a fresh message
                spot.resume()
                spot.wait(settings.shutdown_grace_s)
                fleet.start("finisher")
            status = wait_for_state(admin, settings, job_id, ["delivered", "failed"], 400, fleet=fleet)
            time.sleep(3 * settings.dlq_sweep_interval_s)  # idle: the sweeper polls the DLQ
        finally:
            fleet.stop_all()
        calls = list(proxy.calls or [])
    yield {"settings": settings, "admin": admin, "job_id": job_id, "status": status, "fleet": fleet,
           "calls": calls, "policy": json.loads(outputs["policy_json"]["value"]), "role": role,
           "role_credentials": role_credentials}
    tf.run("destroy", "-auto-approve", "-input=false", "-no-color")


def test_a_job_is_delivered_by_workers_holding_only_the_task_roles_rights(
        role_job: dict[str, Any], local_stack: LocalStack) -> None:
    status, fleet = role_job["status"], role_job["fleet"]
    denied = [e for e in fleet.all_events() if "AccessDenied" in json.dumps(e)]
    assert status["state"] == "delivered", (status.get("error"), denied[:3])
    assert denied == []
    events = [e.get("event") for e in fleet.all_events()]
    assert "job_interrupted_requeued" in events and "dlq_sweep_failed" not in events
    assert "job_data_removal_failed" not in events  # the person's uploads went, under the role's rights
    assert keys(role_job["admin"], role_job["settings"].input_bucket, f"uploads/{role_job['job_id']}/",
                role_job["settings"]) == []
    assert len(emails_for(local_stack.outbox, role_job["job_id"])) == 1
    assert queue_counts(role_job["admin"], role_job["settings"]) == (0, 0)


def test_every_call_the_workers_made_is_allowed_by_the_rendered_policy(role_job: dict[str, Any]) -> None:
    report = check(role_job["policy"], role_job["calls"])
    actions = {c.action for c in report.calls}
    assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:DeleteObject", "sqs:ReceiveMessage",
            "sqs:SendMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
            "secretsmanager:GetSecretValue"} <= actions
    (REPO / ".cache").mkdir(exist_ok=True)
    (REPO / ".cache" / "iam-ledger-worker.json").write_text(json.dumps(
        {"calls": len(report.calls), "used": report.used, "unused": report.unused,
         "denied": [f"{c.action} {c.resource} {dict(c.context)}: {why}" for c, why in report.denied]}, indent=1))
    assert report.denied == [], "\n".join(f"{c.action} {c.resource} {dict(c.context)}: {why}"
                                          for c, why in report.denied)


def test_the_enforcing_stack_denies_the_role_what_its_policy_does_not_grant(role_job: dict[str, Any]) -> None:
    """Without this, the job above would pass just as well if enforcement had silently stopped."""
    from botocore.exceptions import ClientError

    settings, role = role_job["settings"], role_job["role"]
    s3, sqs = role.client("s3", settings), role.client("sqs", settings)
    attempts = {
        "write into another job area": lambda: s3.put_object(Bucket=settings.input_bucket, Key="not-uploads/x",
                                                              Body=b"x"),
        "delete the job queue": lambda: sqs.delete_queue(QueueUrl=settings.queue_url),
        "create a bucket": lambda: s3.create_bucket(Bucket="iam-role-may-not"),
    }
    for what, attempt in attempts.items():
        with pytest.raises(ClientError) as err:
            attempt()
        code, status = err.value.response["Error"]["Code"], err.value.response["ResponseMetadata"]["HTTPStatusCode"]
        assert code in ("AccessDenied", "AccessDeniedException") or status == 403, (what, code, status)
    # and the same role may do what its policy grants (the denials are the policy's, not a broken key)
    assert s3.list_objects_v2(Bucket=settings.output_bucket, Prefix="jobs/")["ResponseMetadata"]["HTTPStatusCode"] == 200

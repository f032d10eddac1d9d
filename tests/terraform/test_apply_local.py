"""`terraform apply` of the storage-and-messaging module against the embedded moto server, for
real: the applied bucket's S3 notification puts a photo folder's manifest on the applied queue,
and a worker configured only from `terraform output -json` (plus the tiny model) delivers the
job and sends its email through the applied SES identity. Destroyed afterwards.

The module is copied into a temporary folder with one extra file, a provider block whose
endpoints point at moto; nothing in the module itself changes except
``local_endpoint_compat=true`` (what moto cannot store, see the module's variables.tf).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from processor.devkit.fault_proxy import FaultProxy
from processor.devkit.iam_ledger import Call, check
from processor.devkit.local_stack import LocalStack
from processor.job.photo_names import photo_names_key
from processor.manifest import job_prefix, results_prefix
from processor.settings import Settings
from processor.worker import serve
from tests.integration.harness import job_status, keys, queue_counts, submit
from tests.terraform.tf import Terraform, apply_module, settings_from_outputs

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "terraform" / "modules" / "storage_messaging"

pytestmark = pytest.mark.skipif(shutil.which("terraform") is None,
                                reason="the terraform binary is not installed on this machine")


@pytest.fixture(scope="module")
def applied(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Terraform, dict[str, Any]]]:
    """The module applied to the session's moto server; destroyed when the tests are done."""
    work = tmp_path_factory.mktemp("tf-storage")
    prefix = f"tf{uuid.uuid4().hex[:8]}"
    tf, outputs = apply_module(MODULE, work, local_stack.endpoint_url, local_stack.settings.aws_region,
                               {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}, {
        "name_prefix": prefix,
        "email_sender": f"{prefix}@example.com",
        "visibility_timeout_s": 60,
        "heartbeat_interval_s": 2,  # the lease rule: V >= 3H; S = V - 2H = 56
        "max_receive_count": 3,
        "upload_expiry_days": 5,  # outlasts the 4-day message retention plus the 3-hour job limit
        "results_retention_days": 14,
        "force_destroy": True,
        "kms_deletion_window_days": 7,
        "local_endpoint_compat": True,
    })
    try:
        yield tf, outputs
    finally:
        tf.run("destroy", "-auto-approve", "-input=false", "-no-color")


@pytest.fixture(scope="module")
def worker_policy(applied: tuple[Terraform, dict[str, Any]], local_stack: LocalStack,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The worker role's policy document, as ``worker_iam`` renders it for the applied resources
    and a front-door link key."""
    _, out = applied
    value = {k: v["value"] for k, v in out.items()}
    # The front door's link key (the worker reads it to sign the ready email's links).
    key = local_stack.client("secretsmanager").create_secret(
        Name=f"{value['queue_name'].removesuffix('-jobs')}-link-key", SecretString=uuid.uuid4().hex * 2)
    tf, outputs = apply_module(REPO / "terraform" / "modules" / "worker_iam", tmp_path_factory.mktemp("tf-iam"),
                               local_stack.endpoint_url, local_stack.settings.aws_region,
                               {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}, {
        "name_prefix": value["queue_name"].removesuffix("-jobs"), "cluster_name": "tf-cluster",
        **{k: value[k] for k in ("input_bucket_arn", "output_bucket_arn", "queue_arn", "dlq_arn", "kms_key_arn",
                                 "ses_configuration_set")},
        # moto names an SESv2 email identity "arn:aws:ses:<region>::email-identity/<name>" (no
        # account); AWS names it as below, the resource a send is authorized against.
        "ses_identity_arn": f"arn:aws:ses:{local_stack.settings.aws_region}:123456789012:identity/"
                            f"{value['HEADSHOTS_EMAIL_SENDER']}",
        "email_sender": value["HEADSHOTS_EMAIL_SENDER"], "link_secret_arn": key["ARN"]})
    try:
        yield {"policy": json.loads(outputs["policy_json"]["value"]), "link_secret": key}
    finally:
        tf.run("destroy", "-auto-approve", "-input=false", "-no-color")


def test_outputs_are_exactly_settings_the_worker_reads(applied: tuple[Terraform, dict[str, Any]]) -> None:
    _, outputs = applied
    values = settings_from_outputs(outputs)
    assert set(values) <= set(Settings.model_fields), set(values) - set(Settings.model_fields)
    assert {"input_bucket", "output_bucket", "queue_url", "dlq_url", "aws_region",
            "email_backend", "email_sender"} <= set(values)
    Settings(**values)  # every value passes the worker's own validation


def test_applied_buckets_block_public_access_and_encrypt_with_the_key(
        applied: tuple[Terraform, dict[str, Any]], local_stack: LocalStack) -> None:
    _, outputs = applied
    s3 = local_stack.client("s3")
    for name in ("HEADSHOTS_INPUT_BUCKET", "HEADSHOTS_OUTPUT_BUCKET"):
        bucket = outputs[name]["value"]
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values()), block
        rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == outputs["kms_key_arn"]["value"]
    rules = s3.get_bucket_lifecycle_configuration(Bucket=outputs["HEADSHOTS_INPUT_BUCKET"]["value"])["Rules"]
    expiry = {r["Filter"].get("Prefix"): r["Expiration"]["Days"] for r in rules if "Expiration" in r}
    assert expiry == {"uploads/": 5}


def test_a_rejected_jobs_photo_names_expire_with_its_results_not_with_its_status(
        applied: tuple[Terraform, dict[str, Any]], local_stack: LocalStack) -> None:
    """Photo names are the person's data: the applied lifecycle expires results/<job>/photos.json
    after results_retention_days (14 here), as the results; status.json, which names no photo,
    is kept longer (it must outlive the dead-letter queue)."""
    _, outputs = applied
    rules = local_stack.client("s3").get_bucket_lifecycle_configuration(
        Bucket=outputs["HEADSHOTS_OUTPUT_BUCKET"]["value"])["Rules"]

    def expiry(key: str) -> list[int]:
        return [r["Expiration"]["Days"] for r in rules if r["Status"] == "Enabled" and "Expiration" in r
                and key.startswith(r.get("Filter", {}).get("Prefix", r.get("Prefix", "")))]

    assert expiry(photo_names_key("j-1")) == expiry(results_prefix("j-1") + "results.json") == [14]
    assert expiry(job_prefix("j-1") + "status.json") and min(expiry(job_prefix("j-1") + "status.json")) > 14


async def test_uploaded_folder_queues_a_job_that_a_worker_configured_from_outputs_delivers(
        applied: tuple[Terraform, dict[str, Any]], worker_policy: dict[str, Any], local_stack: LocalStack,
        job_photos: Path, tiny_model_dir: Path, deepface_home: Path, tmp_path: Path) -> None:
    """Also the SES and KMS half of the IAM ledger (tests/terraform/test_worker_iam.py has the rest):
    every call of this job, on the module's KMS-encrypted buckets and its SES identity, is judged
    against the worker role's policy by AWS's rules, which moto does not apply to SES or KMS."""
    from processor.devkit.profiles import fast_queue_settings, tiny_model_settings

    _, outputs = applied
    settings = Settings(**{
        **tiny_model_settings(tiny_model_dir, tmp_path / "cache", num_images=4),
        **fast_queue_settings(heartbeat_interval_s=2.0, owner_stale_after_s=8.0),
        **settings_from_outputs(outputs),  # buckets, queues, region, SES sender, visibility
        "aws_endpoint_url": local_stack.endpoint_url,
        "deepface_home": deepface_home,
    })
    assert settings.email_backend == "ses" and settings.visibility_timeout_s == 60
    job_id = f"tf-{uuid.uuid4().hex[:10]}"
    # The ready email's links need a front door; the worker reads its key by ARN, as in AWS.
    key = worker_policy["link_secret"]
    settings = local_stack.frontdoor_for(settings, job_id, link_secret_id=key["Name"])
    settings = settings.model_copy(update={"link_secret_id": key["ARN"]})

    # S3 sends s3:TestEvent when the notification is created; then the manifest's event.
    submit(settings, job_photos, "ada@example.com", job_id, name="Ada")
    sqs = local_stack.client("sqs", settings)
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10,
                                                     VisibilityTimeout=0, WaitTimeSeconds=2)["Messages"]]
    keys_in_events = [r["s3"]["object"]["key"] for b in bodies for r in json.loads(b).get("Records", [])]
    assert keys_in_events == [f"uploads%2F{job_id}%2Fmanifest.json"], bodies

    sent_before = len(local_stack.ses_sent_messages())
    with FaultProxy(local_stack.endpoint_url, ledger=True) as proxy:
        await serve(settings.model_copy(update={"aws_endpoint_url": proxy.url}), max_jobs=1, idle_exit_s=30,
                    install_signals=False)
        calls = list(proxy.calls or [])

    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["state"] == "delivered", status
    results = {k.rsplit("/", 1)[-1] for k in keys(local_stack, settings.output_bucket, f"results/{job_id}/", settings)}
    assert {"headshot-001.jpg", "headshot-004.jpg", "contact-sheet.jpg", "headshots.zip", "results.json"} <= results
    assert keys(local_stack, settings.input_bucket, f"uploads/{job_id}/", settings) == []
    assert queue_counts(local_stack, settings) == (0, 0)
    mail = local_stack.ses_sent_messages()[sent_before:]
    assert len(mail) == 1, mail  # one email, from the applied SES identity, to the person
    assert mail[0].source == settings.email_sender
    assert mail[0].destinations and all("ada@example.com" in d for d in mail[0].destinations)

    # The ledger: S3 reads and writes of SSE-KMS objects imply the key's Decrypt / GenerateDataKey.
    key = outputs["kms_key_arn"]["value"]
    buckets = (settings.input_bucket, settings.output_bucket)
    implied = [Call({"s3:GetObject": "kms:Decrypt", "s3:PutObject": "kms:GenerateDataKey"}[c.action], key)
               for c in calls if c.action in ("s3:GetObject", "s3:PutObject")
               and c.resource.split(":::", 1)[1].split("/", 1)[0] in buckets]
    report = check(worker_policy["policy"], calls + implied)
    assert {"ses:SendRawEmail", "kms:Decrypt", "kms:GenerateDataKey", "secretsmanager:GetSecretValue"} <= \
        {c.action for c in report.calls}
    (REPO / ".cache" / "iam-ledger-ses-kms.json").write_text(json.dumps(
        {"calls": len(report.calls), "used": report.used, "unused": report.unused,
         "denied": [f"{c.action} {c.resource} {dict(c.context)}: {why}" for c, why in report.denied]}, indent=1))
    assert report.denied == [], report.denied

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
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from processor.devkit.local_stack import LocalStack
from processor.settings import Settings
from processor.worker import serve
from tests.integration.harness import job_status, keys, queue_counts, submit

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "terraform" / "modules" / "storage_messaging"
SERVICES = ("s3", "sqs", "kms", "ses", "sesv2", "sts", "iam", "cloudwatch")

pytestmark = pytest.mark.skipif(shutil.which("terraform") is None,
                                reason="the terraform binary is not installed on this machine")


def provider_override(endpoint: str, region: str) -> str:
    """A provider block for moto: its endpoints, no account lookups, path-style S3."""
    endpoints = "\n".join(f'    {name} = "{endpoint}"' for name in SERVICES)
    return f'''provider "aws" {{
  region                      = "{region}"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  skip_requesting_account_id  = true
  s3_use_path_style           = true
  endpoints {{
{endpoints}
  }}
}}
'''


def settings_from_outputs(outputs: dict[str, Any]) -> dict[str, str]:
    """Worker settings from `terraform output -json`: each HEADSHOTS_X output is setting x."""
    return {name.removeprefix("HEADSHOTS_").lower(): str(out["value"])
            for name, out in outputs.items() if name.startswith("HEADSHOTS_")}


class Terraform:
    """The terraform CLI in one working folder, offline (provider from the local mirror)."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env

    def run(self, *args: str, timeout: float = 400) -> str:
        proc = subprocess.run(["terraform", *args], cwd=self.workdir, env=self.env, text=True,
                              capture_output=True, timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError(f"terraform {args[0]} failed ({proc.returncode}):\n"
                                 f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        return proc.stdout


def cli_config() -> str:
    out = subprocess.run([str(REPO / "scripts" / "terraform-cli-config.sh")], text=True,
                         capture_output=True, check=True)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def applied(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Terraform, dict[str, Any]]]:
    """The module applied to the session's moto server; destroyed when the tests are done."""
    work = tmp_path_factory.mktemp("tf-storage")
    for tf in MODULE.glob("*.tf"):
        shutil.copy(tf, work / tf.name)
    region = local_stack.settings.aws_region
    (work / "zz_moto_provider_override.tf").write_text(provider_override(local_stack.endpoint_url, region))
    env = {**os.environ, "TF_CLI_CONFIG_FILE": cli_config(), "TF_IN_AUTOMATION": "1",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": region}
    prefix = f"tf{uuid.uuid4().hex[:8]}"
    (work / "terraform.tfvars.json").write_text(json.dumps({
        "name_prefix": prefix,
        "email_sender": f"{prefix}@example.com",
        "visibility_timeout_s": 60,
        "max_receive_count": 3,
        "upload_expiry_days": 3,
        "result_expiry_days": 14,
        "force_destroy": True,
        "kms_deletion_window_days": 7,
        "local_endpoint_compat": True,
    }))
    tf = Terraform(work, env)
    tf.run("init", "-input=false", "-no-color")
    try:
        tf.run("apply", "-auto-approve", "-input=false", "-no-color")
        outputs = json.loads(tf.run("output", "-json", "-no-color"))
        yield tf, outputs
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
    assert expiry == {"uploads/": 3}


async def test_uploaded_folder_queues_a_job_that_a_worker_configured_from_outputs_delivers(
        applied: tuple[Terraform, dict[str, Any]], local_stack: LocalStack, job_photos: Path,
        tiny_model_dir: Path, deepface_home: Path, tmp_path: Path) -> None:
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
    settings = local_stack.frontdoor_for(settings, job_id)  # the ready email's links need a front door

    # S3 sends s3:TestEvent when the notification is created; then the manifest's event.
    submit(settings, job_photos, "ada@example.com", job_id, name="Ada")
    sqs = local_stack.client("sqs", settings)
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=settings.queue_url, MaxNumberOfMessages=10,
                                                     VisibilityTimeout=0, WaitTimeSeconds=2)["Messages"]]
    keys_in_events = [r["s3"]["object"]["key"] for b in bodies for r in json.loads(b).get("Records", [])]
    assert keys_in_events == [f"uploads%2F{job_id}%2Fmanifest.json"], bodies

    sent_before = len(local_stack.ses_sent_messages())
    await serve(settings, max_jobs=1, idle_exit_s=30, install_signals=False)

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

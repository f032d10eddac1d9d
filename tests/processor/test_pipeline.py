"""One job's pipeline against the local stack: terminal states for bad input, checkpoints, resume
without redoing finished stages or images, stop requests. Real stages on the tiny model."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog.testing

from processor.aws.storage import ObjectStore
from processor.devkit.local_stack import LocalStack
from processor.failpoints import FailpointError
from processor.job.attempt import JobResult, JobRun
from processor.job.store import JobStore
from processor.links import address_proof
from processor.pipeline import Pipeline
from processor.settings import Settings
from tests.integration.harness import (
    emails_for,
    job_status,
    keys,
    stage_runs,
    submit,
    text_body,
)


async def _attempt(settings: Settings, job_id: str, worker_id: str,
                   should_stop: Callable[[], bool] = lambda: False) -> JobResult:
    """Claim the job as ``worker_id`` and run one attempt (what the worker does, minus SQS)."""
    async with ObjectStore(settings) as store:
        jobs = JobStore(store, settings.output_bucket, settings.stale_after_s)
        claim = await jobs.claim(job_id, worker_id, time.time())
        assert claim.runnable, claim.outcome
        run = JobRun(job_id, worker_id, claim.status.attempts, False, should_stop)
        try:
            return await Pipeline(settings, store, jobs).run(run)
        except BaseException:
            await jobs.release(job_id, worker_id, time.time())  # as the worker does after a crash
            raise


def _upload_manifest(local_stack: LocalStack, settings: Settings, job_id: str, doc: object) -> None:
    local_stack.client("s3", settings).put_object(
        Bucket=settings.input_bucket, Key=f"uploads/{job_id}/manifest.json", Body=json.dumps(doc).encode())


async def test_missing_manifest_fails_the_job_with_a_reason_and_no_email(
        job_settings: Settings, local_stack: LocalStack, job_id: str) -> None:
    assert await _attempt(job_settings, job_id, "w1") is JobResult.TERMINAL
    status = job_status(local_stack, job_settings, job_id)
    assert status is not None and status["state"] == "failed" and "manifest" in status["error"]
    assert emails_for(local_stack.outbox, job_id) == []


def _proof(local_stack: LocalStack, settings: Settings, job_id: str, address: str) -> str:
    """What the front door (or the operator's submit) writes once the address is proven."""
    return address_proof(local_stack.link_keys(settings)[0], job_id, address)


async def test_invalid_manifest_with_a_readable_email_fails_the_job_and_emails_the_reason(
        job_settings: Settings, local_stack: LocalStack, job_id: str) -> None:
    _upload_manifest(local_stack, job_settings, job_id, {"version": 2, "email": "fay@example.com",
                                                          "proof": _proof(local_stack, job_settings, job_id,
                                                                          "fay@example.com")})
    assert await _attempt(job_settings, job_id, "w1") is JobResult.TERMINAL
    status = job_status(local_stack, job_settings, job_id)
    assert status is not None and status["state"] == "failed" and "version" in status["error"]
    [mail] = emails_for(local_stack.outbox, job_id)
    assert mail["To"].addresses[0].addr_spec == "fay@example.com" and "version" in text_body(mail)


@pytest.mark.parametrize("proof", ["none", "other_job", "other_address", "forged"])
async def test_an_unproven_address_gets_no_email_and_the_status_says_withheld(
        job_settings: Settings, local_stack: LocalStack, job_id: str, proof: str) -> None:
    """The spam relay the issue found: a manifest naming any address made the worker mail it.
    Now only an address the front door proved (its proof in the manifest) is ever emailed."""
    address = "victim@example.com"
    proofs = {"none": None, "other_job": _proof(local_stack, job_settings, job_id + "x", address),
              "other_address": _proof(local_stack, job_settings, job_id, "attacker@example.com"),
              "forged": address_proof(b"f" * 48, job_id, address)}
    doc = {"version": 1, "email": address, "name": "Visit spam.example",
           **({"proof": proofs[proof]} if proofs[proof] else {})}
    _upload_manifest(local_stack, job_settings, job_id, doc)  # no photos at all: rejected at once
    with structlog.testing.capture_logs() as logs:
        assert await _attempt(job_settings, job_id, "w1") is JobResult.TERMINAL
    status = job_status(local_stack, job_settings, job_id)
    assert status is not None and status["state"] == "rejected" and status["email"] == "withheld"
    assert emails_for(local_stack.outbox, job_id) == []
    assert "email_withheld" in [e["event"] for e in logs]
    bad = {**doc, "version": 2}  # a broken manifest's bad_manifest email is withheld alike
    _upload_manifest(local_stack, job_settings, job_id + "b", {**bad, "proof": bad.get("proof") or proofs["forged"]})
    assert await _attempt(job_settings, job_id + "b", "w1") is JobResult.TERMINAL
    status = job_status(local_stack, job_settings, job_id + "b")
    assert status is not None and status["state"] == "failed" and status["email"] == "withheld"
    assert emails_for(local_stack.outbox, job_id + "b") == []


async def test_a_proof_made_before_a_key_rotation_still_proves_the_address(
        job_settings: Settings, local_stack: LocalStack, job_id: str) -> None:
    """The manifest waited in the queue across a rotation: the previous key still verifies it."""
    from processor.aws import secrets as worker_secrets

    doc = {"version": 1, "email": "fay@example.com", "pad": 1,
           "proof": _proof(local_stack, job_settings, job_id, "fay@example.com")}
    sm = local_stack.client("secretsmanager", job_settings)
    sm.put_secret_value(SecretId=job_settings.link_secret_id, SecretString="n" * 48)  # rotated: AWSPREVIOUS
    worker_secrets._cache.clear()
    _upload_manifest(local_stack, job_settings, job_id, doc)
    assert await _attempt(job_settings, job_id, "w1") is JobResult.TERMINAL
    status = job_status(local_stack, job_settings, job_id)
    assert status is not None and status["state"] == "failed" and status["email"] == "sent"
    [mail] = emails_for(local_stack.outbox, job_id)
    assert "manifest.json needs a fix" in str(mail["Subject"])


async def test_an_oversized_manifest_is_read_bounded_and_the_whole_upload_folder_removed(
        job_settings: Settings, local_stack: LocalStack, job_id: str) -> None:
    """Issue 15: a 3 MB manifest.json is refused from a 64 KiB ranged read; the photos beside
    it, late ones included, are deleted when the job ends."""
    s3 = local_stack.client("s3", job_settings)
    big = b'{"version": 1, "email": "fay@example.com", "pad": "' + b"x" * (3 * 2**20) + b'"}'
    s3.put_object(Bucket=job_settings.input_bucket, Key=f"uploads/{job_id}/manifest.json", Body=big)
    s3.put_object(Bucket=job_settings.input_bucket, Key=f"uploads/{job_id}/late.jpg", Body=b"x")
    assert await _attempt(job_settings, job_id, "w1") is JobResult.TERMINAL
    status = job_status(local_stack, job_settings, job_id)
    assert status is not None and status["state"] == "failed"
    assert f"{len(big)} bytes" in status["error"] and "64 KB" in status["error"]
    assert keys(local_stack, job_settings.input_bucket, f"uploads/{job_id}/", job_settings) == []


async def test_crash_mid_generation_resumes_without_redoing_finished_stages_or_images(
        make_job_settings, local_stack: LocalStack, job_photos: Path, job_id: str) -> None:  # noqa: ANN001
    settings = make_job_settings(num_images=4, generation_batch_size=1)
    submit(settings, job_photos, "gus@example.com", job_id)
    crashing = settings.model_copy(update={"failpoints": "generate.image=raise@2"})
    with pytest.raises(FailpointError):
        await _attempt(crashing, job_id, "w1")
    records = keys(local_stack, settings.output_bucket, f"jobs/{job_id}/work/generate/records/", settings)
    assert len(records) == 2  # each accepted image was checkpointed the moment it existed

    assert await _attempt(settings, job_id, "w2") is JobResult.TERMINAL
    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["state"] == "delivered"
    assert stage_runs(status) == {"validate": 1, "prepare": 1, "train": 1, "generate": 2,
                                  "deliver": 1, "notify": 1}
    summary = status["result"]["summary"]
    assert summary["delivered"] == 4 and summary["generated"] == 2  # only the missing two were made
    assert len(emails_for(local_stack.outbox, job_id)) == 1


async def test_stop_request_in_training_checkpoints_and_the_next_attempt_resumes_from_it(
        make_job_settings, local_stack: LocalStack, job_photos: Path, job_id: str) -> None:  # noqa: ANN001
    settings = make_job_settings(train_steps=20)  # a checkpoint every 2 steps
    submit(settings, job_photos, "hal@example.com", job_id)
    stop = threading.Event()
    seen_progress: list[dict] = []
    s3 = local_stack.client("s3", settings)

    async def stop_after_first_checkpoint() -> None:
        prefix = f"jobs/{job_id}/work/train/checkpoints/"
        while True:
            status = job_status(local_stack, settings, job_id)
            if status and status.get("progress"):
                seen_progress.append(status["progress"])
            if s3.list_objects_v2(Bucket=settings.output_bucket, Prefix=prefix).get("KeyCount"):
                stop.set()
                return
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(asyncio.wait_for(stop_after_first_checkpoint(), 600))
    result = await _attempt(settings, job_id, "w1", stop.is_set)
    await watcher
    assert result is JobResult.INTERRUPTED
    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["state"] == "training"
    assert status["stages"]["train"]["finished_at"] is None
    assert any(p["stage"] == "train" for p in seen_progress)  # progress reached status.json

    async with ObjectStore(settings) as store:
        await JobStore(store, settings.output_bucket, 1).release(job_id, "w1", time.time())
    with structlog.testing.capture_logs() as logs:
        assert await _attempt(settings, job_id, "w2") is JobResult.TERMINAL
    [resumed] = [e for e in logs if e["event"] == "train_resuming"]
    assert resumed["checkpoint"].startswith("step-")
    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["state"] == "delivered"
    assert stage_runs(status)["validate"] == 1 and stage_runs(status)["train"] == 2
    assert len(emails_for(local_stack.outbox, job_id)) == 1


async def test_when_no_image_passes_selection_an_extra_round_runs_then_the_no_likeness_email(
        make_job_settings, local_stack: LocalStack, job_photos: Path, job_id: str) -> None:  # noqa: ANN001
    """The tiny model draws no faces: enforce mode rejects every image, twice."""
    settings = make_job_settings(num_images=2, selection_mode="enforce", max_regenerations=0)
    submit(settings, job_photos, "ida@example.com", job_id)
    with structlog.testing.capture_logs() as logs:
        assert await _attempt(settings, job_id, "w1") is JobResult.TERMINAL
    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["state"] == "failed" and status["email"] == "sent"
    assert "looked enough like you" in status["error"]
    assert [e["event"] for e in logs].count("no_image_passed_selection") == 1
    [mail] = emails_for(local_stack.outbox, job_id)
    assert "did not look enough like you" in str(mail["Subject"]) and "What to do" in text_body(mail)
    assert keys(local_stack, settings.input_bucket, f"uploads/{job_id}/", settings) == []

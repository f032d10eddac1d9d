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
from tests.fixtures.jobs import HOSTILE_PHOTO_NAMES
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
    records = [k for k in keys(local_stack, settings.output_bucket, f"jobs/{job_id}/work/generate/image-", settings)
               if k.endswith("/_complete.json")]
    assert len(records) == 2  # each accepted image was checkpointed the moment it existed
    # 12 usable photos: 2 held out, and the prepared training set has no crop of them
    [dataset_key] = [k for k in keys(local_stack, settings.output_bucket, f"jobs/{job_id}/work/prepare/done/", settings)
                     if k.endswith("/dataset.json")]
    body = local_stack.client("s3", settings).get_object(Bucket=settings.output_bucket, Key=dataset_key)["Body"]
    sources = {img["source"] for img in json.loads(body.read())["images"]}
    photos = {p.name for p in job_photos.glob("*.jpg")}
    assert len(photos) == 12 and len(sources) == 10 and sources < photos

    assert await _attempt(settings, job_id, "w2") is JobResult.TERMINAL
    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["state"] == "delivered"
    assert stage_runs(status) == {"validate": 1, "prepare": 1, "train": 1, "choose": 1, "generate": 2, "detail": 1,
                                  "deliver": 1, "notify": 1}
    summary = status["result"]["summary"]
    # the pool is 6 for 4 delivered; the crash left 2, so only the missing 4 were made
    assert summary["delivered"] == 4 and summary["generated"] == 4 and summary["pool"]["made"] == 6
    assert set(summary["held_out"]["files"]) == photos - sources and summary["held_out"]["count"] == 2
    choice = summary["checkpoint_choice"]  # 8 steps: candidates at 4, 6 and 8, each at 0.8 and 1.0
    assert sorted((c["step"], c["scale"]) for c in choice["candidates"]) == [
        (4, 0.8), (4, 1.0), (6, 0.8), (6, 1.0), (8, 0.8), (8, 1.0)]
    assert choice["references"] == "held_out" and choice["images"] == 6
    assert (choice["step"], choice["scale"], choice["judged"]) == (8, 1.0, False)  # the tiny model draws no face
    assert summary["detail"]["enabled"] and summary["detail"]["no_face"] == 4
    assert len(emails_for(local_stack.outbox, job_id)) == 1


async def test_stop_request_in_training_checkpoints_and_the_next_attempt_resumes_from_it(
        make_job_settings, local_stack: LocalStack, job_photos: Path, job_id: str) -> None:  # noqa: ANN001
    settings = make_job_settings(train_steps=20)  # a checkpoint every 2 steps
    submit(settings, job_photos, "hal@example.com", job_id)
    stop = threading.Event()
    seen_progress: list[dict] = []
    s3 = local_stack.client("s3", settings)

    async def stop_after_first_checkpoint() -> None:
        prefix = f"jobs/{job_id}/work/train/step-"
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


# --- issue 20: the job's end, told truthfully, and nothing of the person's left behind ---------
async def _fail(settings: Settings, job_id: str, reason: str = "internal error after 3 attempts") -> None:
    """Fail the job as the worker's over-budget path or the DLQ sweeper does: under a fresh lease."""
    from processor.job.lease import LeaseKeeper

    async with ObjectStore(settings) as store:
        jobs = JobStore(store, settings.output_bucket, settings.stale_after_s)
        claim = await jobs.claim(job_id, "sweeper", time.time(), attempt=False)
        lease = LeaseKeeper(jobs, settings, job_id, "sweeper", claim.status.lease_epoch)
        run = JobRun(job_id, "sweeper", claim.status.attempts, True, lambda: lease.fence.lost, lease.fence)
        async with lease:
            await Pipeline(settings, store, jobs).fail(run, reason)


async def test_every_upload_is_removed_even_keys_a_bulk_delete_cannot_carry(
        job_settings: Settings, local_stack: LocalStack, job_id: str) -> None:
    """S3 takes any UTF-8 key; XML 1.0 cannot carry control characters or a lone CR, and one such
    key failed the whole bulk delete: every photo of the job stayed."""
    s3 = local_stack.client("s3", job_settings)
    _upload_manifest(local_stack, job_settings, job_id, {"version": 2, "email": "fay@example.com"})
    for name in ("ok.jpg", "ctl\x01.jpg", "cr\r.jpg", "bom\ufffe.jpg"):
        s3.put_object(Bucket=job_settings.input_bucket, Key=f"uploads/{job_id}/{name}", Body=b"x")
    assert await _attempt(job_settings, job_id, "w1") is JobResult.TERMINAL
    assert keys(local_stack, job_settings.input_bucket, f"uploads/{job_id}/", job_settings) == []
    assert keys(local_stack, job_settings.output_bucket, f"jobs/{job_id}/work/", job_settings) == []


async def test_a_job_whose_ready_email_went_out_before_its_last_attempt_died_ends_delivered(
        make_job_settings, local_stack: LocalStack, job_photos: Path, job_id: str) -> None:  # noqa: ANN001
    """The final attempt sent the ready email and was killed before the terminal write: failing
    it then (sweeper or over-budget) ended a delivered job as failed."""
    settings = make_job_settings(num_images=2, train_steps=4)
    submit(settings, job_photos, "ned@example.com", job_id)
    killed = settings.model_copy(update={"failpoints": "notify.sent=raise"})
    with pytest.raises(FailpointError):
        await _attempt(killed, job_id, "w1")
    with structlog.testing.capture_logs() as logs:
        await _fail(settings, job_id)
    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["state"] == "delivered" and status["email"] == "sent"
    assert status["result"]["files"] and "job_delivered_before_its_last_attempt_died" in [e["event"] for e in logs]
    [mail] = emails_for(local_stack.outbox, job_id)
    assert "ready" in str(mail["Subject"])
    assert keys(local_stack, settings.input_bucket, f"uploads/{job_id}/", settings) == []


async def test_a_manifest_that_s3_cannot_serve_right_now_never_ends_the_job_without_its_email(
        job_settings: Settings, local_stack: LocalStack, job_id: str) -> None:
    """A transient S3 error reading the manifest recorded ``email: none``: nobody was told."""
    from processor.devkit.fault_proxy import Fault, FaultProxy

    _upload_manifest(local_stack, job_settings, job_id, {"version": 1, "email": "gil@example.com",
                                                          "proof": _proof(local_stack, job_settings, job_id,
                                                                          "gil@example.com")})
    outage = Fault("s3", "server_error", operation="GetObject", rate=1.0,
                   match=lambda r: r.path.endswith("/manifest.json"))
    with FaultProxy(local_stack.endpoint_url, faults=[outage]) as proxy:
        faulty = job_settings.model_copy(update={"aws_endpoint_url": proxy.url})
        with pytest.raises(Exception) as err:
            await _fail(faulty, job_id)
    assert "InternalError" in repr(err.value) or "500" in repr(err.value)
    status = job_status(local_stack, job_settings, job_id)
    assert status is not None and status["state"] != "failed"  # not ended: the failure is retried
    await _fail(job_settings, job_id)  # S3 is back: the next try ends it, with its email
    status = job_status(local_stack, job_settings, job_id)
    assert status is not None and status["state"] == "failed" and status["email"] == "sent"
    assert len(emails_for(local_stack.outbox, job_id)) == 1


async def test_a_failure_email_that_cannot_go_out_is_retried_for_the_window_then_alarmed_as_missing(
        make_job_settings, local_stack: LocalStack, job_id: str) -> None:
    from processor.devkit.local_stack import free_port

    # Nothing listens there: each send retries its own 6 tries (~6 s), then the window's next try.
    # The window outlasts one try even on a loaded machine (a try that alone used it up ends the
    # retries at once, as it should, and would leave nothing to see here).
    settings = make_job_settings(smtp_port=free_port(), email_retry_window_s=20.0)
    _upload_manifest(local_stack, settings, job_id, {"version": 1, "email": "hal@example.com",
                                                      "proof": _proof(local_stack, settings, job_id, "hal@example.com")})
    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        await _fail(settings, job_id)
    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["state"] == "failed" and status["email"] == "failed"
    events = [e["event"] for e in logs]
    assert events.count("email_missing") == 1 and "email_retry_scheduled" in events
    assert time.monotonic() - started <= 20 + 15  # bounded: the window, plus at most one more try
    assert keys(local_stack, settings.input_bucket, f"uploads/{job_id}/", settings) == []


# --- issue 21: a rejected job's photo names are kept only as long as its results -------------
def _names_in(doc: object) -> set[str]:
    """Every photo name of HOSTILE_PHOTO_NAMES that any string (key or value) in ``doc`` holds."""
    text = json.dumps(doc, ensure_ascii=False)
    return {n for n in HOSTILE_PHOTO_NAMES if n in text}


async def test_a_rejected_jobs_status_names_no_photo_and_its_names_go_beside_the_results(
        job_settings: Settings, local_stack: LocalStack, job_photos: Path, job_id: str) -> None:
    """Photo names are the person's data: status.json outlives the results (90 days against 7),
    so at the job's end the names move to results/<job>/photos.json, under the results' lifecycle."""
    s3 = local_stack.client("s3", job_settings)
    good = sorted(job_photos.glob("*.jpg"))
    names = sorted(HOSTILE_PHOTO_NAMES)
    bodies = {names[0]: good[0].read_bytes(), names[1]: good[0].read_bytes(),  # the same shot twice
              names[2]: good[1].read_bytes(), **{n: b"not a photo" for n in names[3:]}}
    for name, body in bodies.items():
        s3.put_object(Bucket=job_settings.input_bucket, Key=f"uploads/{job_id}/{name}", Body=body)
    _upload_manifest(local_stack, job_settings, job_id, {"version": 1, "email": "kim@example.com",
                                                          "proof": _proof(local_stack, job_settings, job_id,
                                                                          "kim@example.com")})
    assert await _attempt(job_settings, job_id, "w1") is JobResult.TERMINAL
    status = job_status(local_stack, job_settings, job_id)
    assert status is not None and status["state"] == "rejected" and status["email"] == "sent"
    assert _names_in(status) == set()
    kept = json.loads(s3.get_object(Bucket=job_settings.output_bucket, Key=f"results/{job_id}/photos.json")["Body"].read())
    assert {p["file"] for p in kept["photos"]} == set(names)
    by_number = {p["photo"]: p for p in kept["photos"]}
    [twin] = [p for p in status["validation"]["photos"] if p["reason"] == "duplicate"]
    other = next(n for n in names[:2] if n != by_number[twin["photo"]]["file"])
    assert by_number[twin["photo"]]["message"].count(other) == 1  # the page names the other photo...
    assert f"photo {names.index(other) + 1}" in twin["message"]    # ...and status.json numbers it
    [mail] = emails_for(local_stack.outbox, job_id)  # the person's email still lists what to replace
    assert "unreadable" in text_body(mail).lower() or "could not open" in text_body(mail).lower()


async def test_a_job_failed_after_validation_keeps_no_photo_name_and_writes_no_names_record(
        job_settings: Settings, local_stack: LocalStack, job_id: str) -> None:
    """The sweeper's and the over-budget path end a job from its running status.json, which
    names every photo: the terminal write drops the names there too."""
    from processor.job.state import JobState

    _upload_manifest(local_stack, job_settings, job_id, {"version": 1, "email": "lee@example.com",
                                                          "proof": _proof(local_stack, job_settings, job_id,
                                                                          "lee@example.com")})
    running = {"accepted": True, "usable": 10, "required": 10, "problem": None, "photos": [
        {"file": n, "ok": True, "reason": None, "message": "Good photo.", "box": [1, 2, 3, 4],
         "identity_distance": 0.3} for n in HOSTILE_PHOTO_NAMES]}
    async with ObjectStore(job_settings) as store:
        jobs = JobStore(store, job_settings.output_bucket, job_settings.stale_after_s)
        await jobs.claim(job_id, "w1", time.time())
        await jobs.update(job_id, lambda s: s.transition(JobState.VALIDATING, time.time())
                          .model_copy(update={"validation": running}).transition(JobState.TRAINING, time.time()))
        await jobs.release(job_id, "w1", time.time(), crashed=True)
    assert _names_in(job_status(local_stack, job_settings, job_id)) == set(HOSTILE_PHOTO_NAMES)
    await _fail(job_settings, job_id)
    status = job_status(local_stack, job_settings, job_id)
    assert status is not None and status["state"] == "failed" and status["validation"]["usable"] == 10
    assert _names_in(status) == set() and len(status["validation"]["photos"]) == len(HOSTILE_PHOTO_NAMES)
    assert keys(local_stack, job_settings.output_bucket, f"results/{job_id}/", job_settings) == []


async def test_a_changed_training_config_restarts_training_from_the_prepared_data_with_a_reason(
        make_job_settings, local_stack: LocalStack, job_photos: Path, job_id: str) -> None:  # noqa: ANN001
    """A deploy changed the training config while the job was in flight: its checkpoint cannot
    resume the new run. It used to raise on every attempt until the job failed."""
    settings = make_job_settings(train_steps=8, num_images=2)  # a checkpoint every 2 steps
    submit(settings, job_photos, "joy@example.com", job_id)
    interrupted = settings.model_copy(update={"failpoints": "train.checkpointed=raise@1"})
    with pytest.raises(FailpointError):
        await _attempt(interrupted, job_id, "w1")
    assert any("/step-" in k for k in keys(local_stack, settings.output_bucket, f"jobs/{job_id}/work/train/", settings))
    deployed = settings.model_copy(update={"prior_loss_weight": 0.5})
    with structlog.testing.capture_logs() as logs:
        assert await _attempt(deployed, job_id, "w2") is JobResult.TERMINAL
    [restarted] = [e for e in logs if e["event"] == "train_restarted"]
    assert "prior_loss_weight" in restarted["reason"]
    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["state"] == "delivered"
    assert stage_runs(status)["prepare"] == 1 and stage_runs(status)["train"] == 2  # prepared data reused

"""The whole service through its real event path: S3 upload -> S3 notification -> SQS -> worker
-> results in S3 -> an email whose links download the results. moto server over HTTP, the
tiny SDXL model through ``from_pretrained``, deepface with real weights, an SMTP sink."""

from __future__ import annotations

import html
import io
import json
import re
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from processor.devkit.local_stack import LocalStack
from processor.settings import Settings
from processor.worker import serve
from tests.fixtures.jobs import RejectableSet
from tests.integration.harness import (
    dlq_count,
    emails_for,
    job_status,
    keys,
    queue_counts,
    send_raw,
    stage_runs,
    submit,
    text_body,
)

URL = re.compile(r"https?://\S+")


def _links(body: str) -> dict[str, str]:
    """Presigned links of a ready email by object name."""
    out = {}
    for url in URL.findall(body):
        name = url.split("?", 1)[0].rsplit("/", 1)[-1]
        out[name] = url
    return out


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - local moto endpoint
        return resp.status, resp.read()


async def test_uploaded_folder_is_delivered_with_50_headshots_and_one_email_whose_links_download(
        make_job_settings: Callable[..., Settings], local_stack: LocalStack, job_photos: Path,
        job_id: str) -> None:
    settings = make_job_settings(num_images=50)
    submit(settings, job_photos, "ada@example.com", job_id, name="Ada")
    assert queue_counts(local_stack, settings) == (1, 0)  # the manifest, and only it, triggered

    await serve(settings, max_jobs=1, idle_exit_s=30, install_signals=False)

    status = job_status(local_stack, settings, job_id)
    assert status is not None and status["state"] == "delivered", status
    assert set(stage_runs(status)) == {"validate", "prepare", "train", "choose", "generate", "detail", "deliver",
                                       "notify"}
    assert all(runs == 1 for runs in stage_runs(status).values())
    results = keys(local_stack, settings.output_bucket, f"results/{job_id}/", settings)
    names = sorted(k.rsplit("/", 1)[-1] for k in results)
    assert names == sorted([f"headshot-{i:03d}.jpg" for i in range(1, 51)]
                           + ["contact-sheet.jpg", "headshots.zip", "results.json"])
    # privacy: the person's uploads and work files are gone once the job has ended
    assert keys(local_stack, settings.input_bucket, f"uploads/{job_id}/", settings) == []
    assert keys(local_stack, settings.output_bucket, f"jobs/{job_id}/work/", settings) == []
    assert queue_counts(local_stack, settings) == (0, 0) and dlq_count(local_stack, settings) == 0

    [mail] = emails_for(local_stack.outbox, job_id)
    assert mail["To"].addresses[0].addr_spec == "ada@example.com"
    body = text_body(mail)
    assert "report mode" in body  # the tiny model cannot pass the likeness check: said plainly
    links = _links(body)
    assert set(links) >= {"headshots.zip", "contact-sheet.jpg", job_id}  # job_id: the gallery
    _, gallery = _get(links[job_id])  # every headshot's link lives on the gallery page
    links.update(_links(html.unescape(" ".join(re.findall(r'href="([^"]*/d/[^"]*)"', gallery.decode())))))
    assert all(f"headshot-{i:03d}.jpg" in links for i in range(1, 51))
    for name in ("headshot-001.jpg", "headshot-050.jpg", "contact-sheet.jpg"):
        code, data = _get(links[name])
        assert code == 200
        with Image.open(io.BytesIO(data)) as img:
            assert img.format == "JPEG"
    code, data = _get(links["headshots.zip"])
    assert code == 200
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None and len([n for n in zf.namelist() if n.startswith("headshot-")]) == 50

    s3 = local_stack.client("s3", settings)
    doc = json.loads(s3.get_object(Bucket=settings.output_bucket, Key=f"results/{job_id}/results.json")["Body"].read())
    assert len(doc["images"]) == 50
    assert all("seed" in img and "prompt" in img for img in doc["images"])
    from handlers.generate.loop import seed_for  # the job's own noise (issue 22)

    assert all(img["seed"] == seed_for(settings.seed, img["prompt_index"], img["attempt"], job_id)
               for img in doc["images"])
    assert doc["summary"]["mode"] == "report" and status["result"]["summary"]["mode"] == "report"
    assert (doc["summary"]["model"], doc["summary"]["train_method"]) == (settings.base_model, settings.train_method)


async def test_set_with_three_usable_photos_is_rejected_with_one_email_naming_each_bad_photo(
        job_settings: Settings, local_stack: LocalStack, rejectable_photos: RejectableSet,
        job_id: str) -> None:
    submit(job_settings, rejectable_photos.folder, "bo@example.com", job_id)
    await serve(job_settings, max_jobs=1, idle_exit_s=30, install_signals=False)

    status = job_status(local_stack, job_settings, job_id)
    assert status is not None and status["state"] == "rejected", status
    assert status["validation"]["usable"] == 3
    assert set(stage_runs(status)) == {"validate"}  # nothing trained for a rejected set
    [mail] = emails_for(local_stack.outbox, job_id)
    body = text_body(mail)
    for name in rejectable_photos.bad:
        assert name in body
    for name in rejectable_photos.good:
        assert name not in body
    assert "7 more" in str(mail["Subject"])
    assert queue_counts(local_stack, job_settings) == (0, 0)


async def test_the_same_s3_event_twice_runs_the_job_once_and_sends_one_email(
        job_settings: Settings, local_stack: LocalStack, job_photos: Path, job_id: str) -> None:
    submit(job_settings, job_photos, "cy@example.com", job_id)
    sqs = local_stack.client("sqs", job_settings)
    [original] = sqs.receive_message(QueueUrl=job_settings.queue_url, WaitTimeSeconds=1)["Messages"]
    send_raw(local_stack, job_settings, original["Body"])  # S3 delivered it twice
    sqs.change_message_visibility(QueueUrl=job_settings.queue_url, ReceiptHandle=original["ReceiptHandle"],
                                  VisibilityTimeout=0)

    await serve(job_settings, idle_exit_s=4, install_signals=False)

    status = job_status(local_stack, job_settings, job_id)
    assert status is not None and status["state"] == "delivered"
    assert all(runs == 1 for runs in stage_runs(status).values()), stage_runs(status)
    assert status["attempts"] == 1
    assert len(emails_for(local_stack.outbox, job_id)) == 1
    assert queue_counts(local_stack, job_settings) == (0, 0) and dlq_count(local_stack, job_settings) == 0


async def test_malformed_message_reaches_the_dead_letter_queue_and_the_worker_serves_the_next_job(
        make_job_settings, local_stack: LocalStack, rejectable_photos: RejectableSet,  # noqa: ANN001
        job_id: str) -> None:
    # No sweeper here: this is about what reaches the DLQ (test_worker.py: the sweeper drops it).
    job_settings = make_job_settings(dlq_sweep_interval_s=0)
    send_raw(local_stack, job_settings, "this is not JSON {")
    submit(job_settings, rejectable_photos.folder, "di@example.com", job_id)

    await serve(job_settings, idle_exit_s=4, install_signals=False)

    dlq = local_stack.dlq_messages(job_settings)
    assert [m.body for m in dlq] == ["this is not JSON {"]
    status = job_status(local_stack, job_settings, job_id)
    assert status is not None and status["state"] == "rejected"
    assert len(emails_for(local_stack.outbox, job_id)) == 1
    assert queue_counts(local_stack, job_settings) == (0, 0)

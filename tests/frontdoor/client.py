"""Helpers of the front-door tests: a tiny HTTP client (no redirects followed, errors as
answers) and a delivered or rejected job as the worker leaves it in the output bucket."""

from __future__ import annotations

import email
import email.policy
import io
import json
import re
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from PIL import Image

from processor.devkit.local_stack import LocalStack
from processor.job.photo_names import photo_names, photo_names_key
from processor.job.state import JobState, JobStatus
from processor.settings import Settings


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def call(url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
         method: str | None = None) -> Answer:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with _OPENER.open(req, timeout=30) as resp:  # noqa: S310 - local test servers
            return Answer(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, dict(exc.headers), exc.read())


def post_json(url: str, doc: Any, headers: dict[str, str] | None = None) -> Answer:
    return call(url, json.dumps(doc).encode(), {"Content-Type": "application/json", **(headers or {})}, "POST")


def post_form_upload(url: str, fields: dict[str, str], file: bytes, name: str, origin: str | None = None) -> Answer:
    """A browser's multipart POST to S3 with a presigned policy (the file field last)."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + file + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if origin:
        headers["Origin"] = origin
    return call(url, b"".join(parts), headers, "POST")


def deliver(stack: LocalStack, settings: Settings, job_id: str, n: int = 3, published_at: float | None = None,
            run: dict[str, Any] | None = None, portraits: bool = False) -> float:
    """What the worker leaves for a delivered job: JPEGs, results.json, status.json. With
    ``portraits`` each image is two files, as results.json lists them (number, format, size)."""
    s3 = stack.client("s3", settings)
    published = published_at or time.time()
    sizes = {"square": (32, 32), "portrait": (32, 40)} if portraits else {"square": (32, 32)}
    images = []
    for i in range(1, n + 1):
        for fmt, size in sizes.items():
            buf = io.BytesIO()
            Image.new("RGB", size, (10 * i, 80, 160)).save(buf, "JPEG")
            name = f"headshot-{i:03d}.jpg" if fmt == "square" else f"headshot-{i:03d}-{fmt}.jpg"
            s3.put_object(Bucket=settings.output_bucket, Key=f"results/{job_id}/{name}",
                          Body=buf.getvalue(), ContentType="image/jpeg")
            images.append({"number": i, "file": name} if not portraits else
                          {"number": i, "file": name, "format": fmt, "width": size[0], "height": size[1]})
    s3.put_object(Bucket=settings.output_bucket, Key=f"results/{job_id}/results.json", Body=json.dumps({
        "version": 1, "summary": run or {"model": "tiny", "train_method": "lora", "train_steps": 8, "steps": 4,
                                         "acceptance_rate": 1.0, "mode": "report"},
        "images": images}).encode())
    now = time.time()
    status = JobStatus.new(job_id, now)
    for state in (JobState.VALIDATING, JobState.TRAINING, JobState.GENERATING, JobState.DELIVERING):
        status = status.transition(state, now)
    status = status.end(JobState.DELIVERED, now, result={"prefix": f"results/{job_id}/", "files": [],
                                                         "summary": {}, "published_at": published})
    s3.put_object(Bucket=settings.output_bucket, Key=f"jobs/{job_id}/status.json", Body=status.to_json())
    return published


def reject(stack: LocalStack, settings: Settings, job_id: str, names: tuple[str, ...]) -> None:
    """What the worker leaves for a rejected job (the worker's own functions build both records):
    status.json, which names no photo, and the names beside the results (``photos.json``).
    Every photo is refused; the last as a duplicate of the first."""
    photos: list[dict[str, Any]] = [{"file": n, "ok": False, "reason": "blurry", "message": "Your face is blurry."}
                                    for n in names[:-1]]
    photos.append({"file": names[-1], "ok": False, "reason": "duplicate", "duplicate_of": names[0],
                   "message": f"This is the same shot as {names[0]}."})
    running = {"accepted": False, "usable": 0, "required": 10, "problem": "We need at least 10 good photos.",
               "photos": photos}
    now = time.time()
    status = JobStatus.new(job_id, now).transition(JobState.VALIDATING, now).end(
        JobState.REJECTED, now, error=running["problem"], validation=running)
    s3 = stack.client("s3", settings)
    s3.put_object(Bucket=settings.output_bucket, Key=photo_names_key(job_id), Body=photo_names(running).to_json())
    s3.put_object(Bucket=settings.output_bucket, Key=f"jobs/{job_id}/status.json", Body=status.to_json())


# --- the code email (the proof step) ------------------------------------------------------
def proof_emails(stack: LocalStack, job_id: str | None = None) -> list[email.message.EmailMessage]:
    """The code emails in the SMTP sink's outbox (for ``job_id``, or all)."""
    found = []
    for path in stack.outbox_messages():
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if msg.get("X-Headshots-Proof") and (job_id is None or msg["X-Headshots-Proof"] == job_id):
            found.append(msg)
    return found  # type: ignore[return-value]


def emailed_code(stack: LocalStack, job_id: str) -> str:
    """The 6-digit code the front door emailed for ``job_id``."""
    [msg] = proof_emails(stack, job_id)
    match = re.search(r"\b([0-9]{6})\b", str(msg["Subject"]))
    assert match, msg["Subject"]
    return match.group(1)


def photo_specs(n: int = 12, size: int = 1000) -> list[dict[str, object]]:
    return [{"name": f"IMG_{i:04d}.jpg", "type": "image/jpeg", "size": size} for i in range(n)]


def create(settings: Settings, email_to: str = "ada.lovelace@example.com", n: int = 12, name: str = "Ada",
           headers: dict[str, str] | None = None, **choices: Any) -> Answer:
    """``POST /api/jobs``: the front door emails a code to ``email_to``; ``choices`` (e.g.
    ``formats``) go in the request as the upload page sends them."""
    return post_json(f"{settings.frontdoor_url}/api/jobs", {"email": email_to, "name": name,
                                                            "photos": photo_specs(n), **choices}, headers)


def verify(settings: Settings, job: dict[str, Any], code: str, headers: dict[str, str] | None = None) -> Answer:
    return post_json(f"{settings.frontdoor_url}/api/jobs/{job['job_id']}/verify",
                     {"ticket": job["ticket"], "code": code}, headers)


def open_job(stack: LocalStack, settings: Settings, email_to: str = "ada.lovelace@example.com", n: int = 12,
             headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A job created and its address proven with the emailed code: upload policies, the start
    ticket, the status token (the verify answer)."""
    created = create(settings, email_to, n, headers=headers)
    assert created.status == 201, created.text
    job = created.json()
    proven = verify(settings, job, emailed_code(stack, job["job_id"]), headers)
    assert proven.status == 200, proven.text
    return proven.json()


def upload_all(stack: LocalStack, job: dict[str, Any], count: int | None = None, body: bytes = b"\xff\xd8 photo") -> None:
    """Send the job's photos (the first ``count``) through their POST policies, as a browser does."""
    for upload in job["uploads"][:count]:
        sent = post_form_upload(upload["url"], upload["fields"], body, upload["name"], stack.frontdoor_origin)
        assert sent.status == 204, sent.text


def start(job: dict[str, Any], headers: dict[str, str] | None = None) -> Answer:
    return post_json(job["start_url"], {"ticket": job["ticket"]}, headers)

"""The front door over HTTP on the embedded stack: the local adapter, the Lambda's handler, moto.

Each test has its own buckets, queue, link key and front-door mount (``aws_settings``).
Results are written as the worker publishes them (status.json, results.json, JPEGs), so these
tests need no model; the browser test runs the real worker.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import structlog
from PIL import Image

from processor.devkit.local_stack import LocalStack
from processor.job.feedback import Rating
from processor.links import LinkSigner, check_address_proof, job_token
from processor.manifest import parse_manifest
from processor.settings import Settings
from tests.fixtures.jobs import HOSTILE_PHOTO_NAMES
from tests.frontdoor.client import (
    call,
    create,
    deliver,
    emailed_code,
    open_job,
    photo_specs,
    post_form_upload,
    post_json,
    proof_emails,
    reject,
    start,
    upload_all,
    verify,
)

ADDRESS = "ada.lovelace@example.com"


def photos(n: int = 12) -> list[dict[str, object]]:
    return photo_specs(n)


def keys(stack: LocalStack, settings: Settings, bucket: str, prefix: str = "") -> list[str]:
    s3 = stack.client("s3", settings)
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def signer(stack: LocalStack, settings: Settings) -> LinkSigner:
    assert settings.frontdoor_url
    return LinkSigner(stack.link_keys(settings)[0], settings.frontdoor_url)


# --- creating, proving and starting a job ---------------------------------------------------
def test_a_job_is_created_proven_uploaded_through_post_policies_and_started_by_the_front_door(
        local_stack: LocalStack, aws_settings: Settings) -> None:
    with structlog.testing.capture_logs() as logs:
        created = create(aws_settings)
        assert created.status == 201, created.text
        pending = created.json()
        assert set(pending) == {"job_id", "ticket", "expires_at", "verify_url"}  # no policy, no token yet
        [mail] = proof_emails(local_stack, pending["job_id"])
        assert [a.addr_spec for a in mail["To"].addresses] == [ADDRESS] and "Ada" not in mail.as_string()
        job = verify(aws_settings, pending, emailed_code(local_stack, pending["job_id"])).json()
    job_id = job["job_id"]
    assert job_id == pending["job_id"] and len(job_id) == 32 and int(job_id, 16) >= 0  # 128 random bits
    assert job["status_url"] == f"{aws_settings.frontdoor_url}/s/{job_id}#{job['token']}"
    origin = local_stack.frontdoor_origin
    for upload in job["uploads"]:
        sent = post_form_upload(upload["url"], upload["fields"], b"\xff\xd8 photo bytes", upload["name"], origin)
        assert sent.status == 204, sent.text
        assert sent.headers.get("Access-Control-Allow-Origin") == origin  # CORS: the front door's origin
    foreign = post_form_upload(job["uploads"][0]["url"], job["uploads"][0]["fields"], b"x", "x", "https://evil.example")
    assert "Access-Control-Allow-Origin" not in foreign.headers  # a browser on any other origin gets nothing
    assert keys(local_stack, aws_settings, aws_settings.input_bucket, f"uploads/{job_id}/manifest.json") == []

    started = start(job)
    assert started.status == 202, started.text
    s3 = local_stack.client("s3", aws_settings)
    manifest = json.loads(s3.get_object(Bucket=aws_settings.input_bucket,
                                        Key=f"uploads/{job_id}/manifest.json")["Body"].read())
    proof = manifest.pop("proof")
    assert manifest == {"version": 1, "email": ADDRESS, "name": "Ada", "photos": [p["name"] for p in photos()]}
    assert check_address_proof(local_stack.link_keys(aws_settings), job_id, ADDRESS, proof)  # what the worker checks
    sqs = local_stack.client("sqs", aws_settings)
    [message] = sqs.receive_message(QueueUrl=aws_settings.queue_url, WaitTimeSeconds=2)["Messages"]
    assert f"uploads%2F{job_id}%2Fmanifest.json" in message["Body"]  # the manifest, last, is the trigger
    again = start(job)
    assert again.status == 409 and again.json()["error"] == "already_started"
    assert "ada" not in repr(logs).lower() and "@" not in repr(logs)  # no address, no name in the logs


def test_the_portrait_choice_travels_from_the_request_through_both_tickets_into_the_manifest(
        local_stack: LocalStack, aws_settings: Settings) -> None:
    created = create(aws_settings, formats=["portrait", "square"])
    assert created.status == 201, created.text
    pending = created.json()
    job = verify(aws_settings, pending, emailed_code(local_stack, pending["job_id"])).json()
    upload_all(local_stack, job)
    # the upload ticket is signed: a client cannot drop the choice (or add a field) after the code
    payload, sig = job["ticket"].split(".")
    doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert doc["body"]["manifest"]["formats"] == ["square", "portrait"]
    doc["body"]["manifest"].pop("formats")
    forged = base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).rstrip(b"=").decode()
    assert post_json(job["start_url"], {"ticket": f"{forged}.{sig}"}).status == 403
    # the start reads only its ticket: a formats beside it changes nothing
    started = post_json(job["start_url"], {"ticket": job["ticket"], "formats": ["square"]})
    assert started.status == 202, started.text
    s3 = local_stack.client("s3", aws_settings)
    body = s3.get_object(Bucket=aws_settings.input_bucket, Key=f"uploads/{job['job_id']}/manifest.json")["Body"].read()
    manifest = json.loads(body)
    assert set(manifest) == {"version", "email", "name", "photos", "proof", "formats"}
    assert manifest["formats"] == ["square", "portrait"]
    assert parse_manifest(body).formats == ["square", "portrait"]  # what the worker will read


def test_a_bad_formats_choice_is_a_clear_400_and_touches_nothing(
        local_stack: LocalStack, aws_settings: Settings) -> None:
    ddb = local_stack.client("dynamodb", aws_settings)
    counters, mails = ddb.scan(TableName=aws_settings.frontdoor_ratelimit_table)["Count"], len(proof_emails(local_stack))
    for formats in (["portrait"], ["square", "banner"], "square"):
        answer = create(aws_settings, formats=formats)
        assert answer.status == 400 and answer.json()["error"] == "bad_formats", answer.text
        assert answer.json()["message"].startswith("That choice of formats is not valid")
    assert ddb.scan(TableName=aws_settings.frontdoor_ratelimit_table)["Count"] == counters
    assert len(proof_emails(local_stack)) == mails and keys(local_stack, aws_settings, aws_settings.input_bucket) == []


def test_the_subject_choice_travels_into_the_manifest_and_a_bad_one_is_a_clear_400(
        local_stack: LocalStack, aws_settings: Settings) -> None:
    """Issue 22: the person's class (man / woman / unset: person) is theirs to choose."""
    created = create(aws_settings, subject="woman")
    assert created.status == 201, created.text
    pending = created.json()
    job = verify(aws_settings, pending, emailed_code(local_stack, pending["job_id"])).json()
    upload_all(local_stack, job)
    assert post_json(job["start_url"], {"ticket": job["ticket"]}).status == 202
    body = local_stack.client("s3", aws_settings).get_object(
        Bucket=aws_settings.input_bucket, Key=f"uploads/{job['job_id']}/manifest.json")["Body"].read()
    assert json.loads(body)["subject"] == "woman" and parse_manifest(body).subject == "woman"
    unset = create(aws_settings, subject=None)  # the page's "rather not say": no field at all
    assert unset.status == 201, unset.text
    for subject in ("robot", "Man", 5):
        answer = create(aws_settings, subject=subject)
        assert answer.status == 400 and answer.json()["error"] == "bad_subject", answer.text
        assert answer.json()["message"].startswith("That choice of subject is not valid")


def test_the_post_policy_pins_the_key_type_size_and_a_short_expiry(
        local_stack: LocalStack, aws_settings: Settings) -> None:
    before = time.time()
    job = open_job(local_stack, aws_settings)
    for upload in job["uploads"]:
        policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
        conditions = policy["conditions"]
        key = f"uploads/{job['job_id']}/{upload['name']}"
        assert upload["fields"]["key"] == key and {"key": key} in conditions
        assert ["starts-with", "$key", f"uploads/{job['job_id']}/"] in conditions
        assert ["content-length-range", 1, 25 * 1024 * 1024] in conditions
        assert {"Content-Type": "image/jpeg"} in conditions and upload["fields"]["Content-Type"] == "image/jpeg"
        assert {"bucket": aws_settings.input_bucket} in conditions
        expires = time.mktime(time.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        assert before + aws_settings.frontdoor_upload_ttl_s - 5 <= expires <= time.time() + aws_settings.frontdoor_upload_ttl_s + 1
        assert not any("manifest" in json.dumps(c) for c in conditions)


def test_heic_photos_get_policies_for_their_own_type(local_stack: LocalStack, aws_settings: Settings) -> None:
    specs = [*photo_specs(10), {"name": "IMG_0100.HEIC", "type": "image/heic", "size": 3000},
             {"name": "IMG_0101.heif", "type": "image/heif", "size": 3000}]
    created = post_json(f"{aws_settings.frontdoor_url}/api/jobs", {"email": ADDRESS, "name": "Ada", "photos": specs})
    assert created.status == 201, created.text
    job = verify(aws_settings, created.json(), emailed_code(local_stack, created.json()["job_id"])).json()
    types = {u["name"]: u["fields"]["Content-Type"] for u in job["uploads"]}
    assert types["IMG_0100.HEIC"] == "image/heic" and types["IMG_0101.heif"] == "image/heif"


@pytest.mark.parametrize("body,status", [
    (b"{not json", 400), (json.dumps({"email": ADDRESS, "name": "Ada", "photos": photos(9)}).encode(), 400),
    (json.dumps({"email": "nope", "name": "Ada", "photos": photos()}).encode(), 400),
    (json.dumps({"email": ADDRESS, "name": "Ada", "photos": photos(), "admin": True}).encode(), 400),
])
def test_a_bad_request_gets_a_clear_4xx_and_touches_nothing(
        local_stack: LocalStack, aws_settings: Settings, body: bytes, status: int) -> None:
    ddb = local_stack.client("dynamodb", aws_settings)
    table = aws_settings.frontdoor_ratelimit_table
    counters = ddb.scan(TableName=table)["Count"]
    mails = len(proof_emails(local_stack))
    answer = call(f"{aws_settings.frontdoor_url}/api/jobs", body, {"Content-Type": "application/json"}, "POST")
    assert answer.status == status and answer.json()["message"]
    assert ddb.scan(TableName=table)["Count"] == counters  # not even a rate-limit counter
    assert keys(local_stack, aws_settings, aws_settings.input_bucket) == []
    assert len(proof_emails(local_stack)) == mails  # and no email


def test_a_forged_or_foreign_ticket_proves_and_starts_nothing(local_stack: LocalStack, aws_settings: Settings) -> None:
    one, two = create(aws_settings).json(), create(aws_settings, "bo@example.com").json()
    code = emailed_code(local_stack, one["job_id"])
    payload, sig = one["ticket"].split(".")
    url = f"{aws_settings.frontdoor_url}/api/jobs/{one['job_id']}/verify"
    for ticket, status in ((two["ticket"], 403), (f"{payload}.x{sig[1:]}", 403)):
        assert post_json(url, {"ticket": ticket, "code": code}).status == status
    assert post_json(f"{aws_settings.frontdoor_url}/api/jobs/..%2F/verify",
                     {"ticket": one["ticket"], "code": code}).status == 404
    # the proof ticket is not an upload ticket: it starts nothing
    assert post_json(f"{aws_settings.frontdoor_url}/api/jobs/{one['job_id']}/start",
                     {"ticket": one["ticket"]}).status == 403
    assert keys(local_stack, aws_settings, aws_settings.input_bucket) == []


def test_code_emails_are_rate_limited_per_address_and_per_client(
        make_aws_settings: Callable[..., Settings]) -> None:
    settings = make_aws_settings(frontdoor_proof_emails_per_address_per_hour=2,
                                 frontdoor_proof_emails_per_client_per_hour=4)
    assert create(settings, "cy@example.com").status == 201
    assert create(settings, "CY+second@example.com").status == 201  # the same inbox
    third = create(settings, "cy@example.com")
    assert third.status == 429 and 0 < int(third.headers["Retry-After"]) <= 3600
    assert create(settings, "di@example.com").status == 201
    assert create(settings, "ed@example.com").status == 201  # the client's 4th code email this hour
    fifth = create(settings, "fi@example.com")
    assert fifth.status == 429 and int(fifth.headers["Retry-After"]) <= 3600


# --- status --------------------------------------------------------------------------------
def test_the_status_needs_the_jobs_token(local_stack: LocalStack, aws_settings: Settings) -> None:
    job = open_job(local_stack, aws_settings)
    url = f"{aws_settings.frontdoor_url}/api/jobs/{job['job_id']}/status"
    assert call(url, headers={"Authorization": f"Bearer {job['token']}"}).json()["state"] == "queued"
    exp = job["token"].split(".")[0]
    for headers in ({}, {"Authorization": "Bearer " + job["token"][:-1] + "A"},
                    {"Authorization": f"Bearer {job_token(b'z' * 48, job['job_id'], int(exp))}"}):
        denied = call(url, headers=headers)
        assert denied.status == 403 and "job_id" not in denied.json()
    published = deliver(local_stack, aws_settings, job["job_id"])
    view = call(url, headers={"Authorization": f"Bearer {job['token']}"}).json()
    assert view["state"] == "delivered" and view["expires_at"] == int(published) + aws_settings.link_ttl_s
    assert call(view["gallery_url"]).status == 200
    page = call(f"{aws_settings.frontdoor_url}/s/{job['job_id']}")
    assert page.status == 200 and job["token"] not in page.text and "status.js" in page.text


def test_a_rejected_jobs_page_names_its_photos_while_the_results_are_kept_then_numbers_them(
        local_stack: LocalStack, aws_settings: Settings) -> None:
    """status.json names no photo; the names live in results/<job>/photos.json, which expires with
    the results. Once it has gone (a 403 to the front door's role on AWS), the page says "photo 1"."""
    job = open_job(local_stack, aws_settings)
    names = (HOSTILE_PHOTO_NAMES[0], "anna-smith-wedding.jpg", HOSTILE_PHOTO_NAMES[-3])
    reject(local_stack, aws_settings, job["job_id"], names)
    url = f"{aws_settings.frontdoor_url}/api/jobs/{job['job_id']}/status"
    view = call(url, headers={"Authorization": f"Bearer {job['token']}"}).json()
    assert view["state"] == "rejected" and [p["file"] for p in view["rejected"]] == list(names)
    assert view["rejected"][2]["advice"] == f"This is the same shot as {names[0]}."
    local_stack.client("s3", aws_settings).delete_object(Bucket=aws_settings.output_bucket,
                                                          Key=f"results/{job['job_id']}/photos.json")
    answer = call(url, headers={"Authorization": f"Bearer {job['token']}"})
    assert answer.status == 200, answer.text
    view = answer.json()
    assert [(p["photo"], p["file"], p["reason"]) for p in view["rejected"]] == [
        (1, "photo 1", "blurry"), (2, "photo 2", "blurry"), (3, "photo 3", "duplicate")]
    assert view["rejected"][2]["advice"] == "This is the same shot as photo 1."
    assert not any(name in json.dumps(view, ensure_ascii=False) for name in names)


# --- downloads -----------------------------------------------------------------------------
def test_a_click_redirects_to_a_fresh_url_signed_by_the_front_door_and_is_counted(
        local_stack: LocalStack, aws_settings: Settings, job_id: str) -> None:
    published = deliver(local_stack, aws_settings, job_id)
    link = signer(local_stack, aws_settings).download_url(job_id, "headshot-002.jpg", int(published) + 3600)
    assert urlsplit(link).netloc == urlsplit(local_stack.frontdoor_origin).netloc
    clicked = time.gmtime(time.time() - 1)
    answer = call(link)
    assert answer.status == 302 and answer.headers["Cache-Control"] == "no-store"
    location = answer.headers["Location"]
    q = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert location.startswith(f"{aws_settings.aws_endpoint_url}/{aws_settings.output_bucket}/results/{job_id}/")
    assert q["X-Amz-Credential"].startswith(local_stack.frontdoor_credentials["AccessKeyId"] + "/")
    assert q["X-Amz-Date"] >= time.strftime("%Y%m%dT%H%M%SZ", clicked)  # signed at the click
    assert int(q["X-Amz-Expires"]) == aws_settings.frontdoor_redirect_ttl_s
    assert 'attachment; filename="headshot-002.jpg"' in q["response-content-disposition"]
    image = call(location)
    assert image.status == 200 and image.body[:2] == b"\xff\xd8"
    view = call(link + "&view=1")
    assert "inline" in parse_qs(urlsplit(view.headers["Location"]).query)["response-content-disposition"][0]
    clicks = keys(local_stack, aws_settings, aws_settings.output_bucket, f"clicks/{job_id}/")
    assert len(clicks) == 1 and clicks[0].startswith(f"clicks/{job_id}/headshot-002.jpg/")  # not the view


def test_a_tampered_link_is_403_and_a_past_exp_the_friendly_expired_page(
        local_stack: LocalStack, aws_settings: Settings, job_id: str) -> None:
    deliver(local_stack, aws_settings, job_id)
    sign = signer(local_stack, aws_settings)
    good = sign.download_url(job_id, "headshot-001.jpg", int(time.time()) + 600)
    q = parse_qs(urlsplit(good).query)
    sig = q["sig"][0]
    tampered = good.replace(sig, ("A" if sig[0] != "A" else "B") + sig[1:])
    other_file = good.replace("headshot-001.jpg", "headshot-002.jpg")
    longer = good.replace(f"exp={q['exp'][0]}", f"exp={int(q['exp'][0]) + 86400}")
    for url in (tampered, other_file, longer, good.split("?")[0], good.replace(job_id, job_id + "x")):
        answer = call(url)
        assert answer.status == 403 and "not valid" in answer.text, url
        assert "Location" not in answer.headers
    expired = call(sign.download_url(job_id, "headshot-001.jpg", int(time.time()) - 1))
    assert expired.status == 410 and "expired" in expired.text.lower() and "Location" not in expired.headers
    gallery = call(sign.gallery_url(job_id, int(time.time()) - 1))
    assert gallery.status == 410 and "expired" in gallery.text.lower()
    assert keys(local_stack, aws_settings, aws_settings.output_bucket, f"feedback/{job_id}/") == []
    assert keys(local_stack, aws_settings, aws_settings.output_bucket, f"clicks/{job_id}/") == []


# --- gallery and ratings -------------------------------------------------------------------
def test_the_gallery_lists_every_headshot_and_stores_a_rating_with_the_runs_settings(
        local_stack: LocalStack, aws_settings: Settings, job_id: str) -> None:
    published = deliver(local_stack, aws_settings, job_id, n=4)
    expires = int(published) + aws_settings.link_ttl_s
    gallery = call(signer(local_stack, aws_settings).gallery_url(job_id, expires))
    assert gallery.status == 200
    for i in range(1, 5):
        assert f"/d/{job_id}/headshot-{i:03d}.jpg?exp={expires}" in gallery.text
    assert gallery.headers["Referrer-Policy"] == "no-referrer"
    assert "script-src 'self'" in gallery.headers["Content-Security-Policy"]
    action = gallery.text.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    url = urlsplit(aws_settings.frontdoor_url)._replace(path="", query="").geturl() + action
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert call(url, b"stars=9", form, "POST").status == 400
    assert call(url, b"stars=4&favourite=headshot-099.jpg", form, "POST").status == 400
    assert keys(local_stack, aws_settings, aws_settings.output_bucket, f"feedback/{job_id}/") == []
    sent = call(url, b"stars=4&favourite=headshot-002.jpg&favourite=headshot-004.jpg", form, "POST")
    assert sent.status == 303 and "rated=1" in sent.headers["Location"]
    s3 = local_stack.client("s3", aws_settings)
    rating = Rating.model_validate_json(s3.get_object(Bucket=aws_settings.output_bucket,
                                                      Key=f"feedback/{job_id}/rating.json")["Body"].read())
    assert rating.stars == 4 and rating.favourites == ["headshot-002.jpg", "headshot-004.jpg"]
    assert (rating.run.model, rating.run.method, rating.run.train_steps) == ("tiny", "lora", 8)
    forged = url.replace("sig=", "sig=x")
    assert call(forged, b"stars=5", form, "POST").status == 403


def test_a_portrait_jobs_gallery_has_one_tile_per_image_with_both_crops_downloadable(
        local_stack: LocalStack, aws_settings: Settings, job_id: str) -> None:
    published = deliver(local_stack, aws_settings, job_id, n=3, portraits=True)
    gallery = call(signer(local_stack, aws_settings).gallery_url(job_id, int(published) + aws_settings.link_ttl_s))
    assert gallery.status == 200
    assert "<h1>Your 3 headshots</h1>" in gallery.text  # images, not files
    tiles = re.findall(r'<li data-number="(\d+)">(.*?)</li>', gallery.text, re.S)
    assert [number for number, _ in tiles] == ["1", "2", "3"]
    for number, tile in tiles:
        downloads = dict(re.findall(r'class="download" data-format="(\w+)" href="([^"]+)"', tile))
        assert list(downloads) == ["square", "portrait"]
        assert f"/d/{job_id}/headshot-{int(number):03d}-portrait.jpg?" in downloads["portrait"]
    portrait = call(downloads["portrait"].replace("&amp;", "&"))
    assert portrait.status == 302
    with Image.open(io.BytesIO(call(portrait.headers["Location"]).body)) as img:
        assert img.size == (32, 40)


def test_pages_and_static_files_are_served_with_a_strict_csp(local_stack: LocalStack, aws_settings: Settings) -> None:
    page = call(f"{aws_settings.frontdoor_url}/")
    assert page.status == 200 and 'type="file"' in page.text
    csp = page.headers["Content-Security-Policy"]
    assert f"connect-src 'self' {aws_settings.aws_endpoint_url}" in csp and "frame-ancestors 'none'" in csp
    script = call(f"{aws_settings.frontdoor_url}/static/upload.js")
    assert script.status == 200 and script.headers["Content-Type"].startswith("application/javascript")
    assert call(f"{aws_settings.frontdoor_url}/static/app.py").status == 404
    assert call(f"{aws_settings.frontdoor_url}/nope").status == 404


def test_a_link_key_under_32_bytes_signs_nothing(local_stack: LocalStack, aws_settings: Settings) -> None:
    sm = local_stack.client("secretsmanager", aws_settings)
    short = sm.create_secret(Name=f"{aws_settings.input_bucket}-short-key", SecretString="s" * 31)["Name"]
    weak = local_stack.mount_frontdoor(aws_settings.model_copy(update={"link_secret_id": short}),
                                       f"short-{aws_settings.input_bucket}")
    mails = len(proof_emails(local_stack))
    with structlog.testing.capture_logs() as logs:
        refused = create(weak)
    assert refused.status == 500 and len(proof_emails(local_stack)) == mails  # nothing signed, nothing sent
    assert any("at least 32 bytes" in str(e.get("error")) for e in logs)

"""The front door on the open internet: each HTTP-level attack of the abuse review, made through
the real front door (the Lambda's handler behind the local adapter) on the embedded stack,
and shown refused. Every request is what a stranger can send with curl; each test has its own
buckets, key, counters and mount, and limits small enough to reach in a few requests.
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import structlog

from processor.devkit.local_stack import LocalStack
from processor.links import LinkSigner, job_token
from processor.settings import Settings
from tests.frontdoor.client import (
    call,
    create,
    deliver,
    emailed_code,
    open_job,
    photo_specs,
    post_json,
    proof_emails,
    start,
    upload_all,
    verify,
)

VICTIM = "victim@example.com"
ADVERT = "\u202eWin a prize! Visit cheap-pills.example now\u202c"


def manifest_keys(stack: LocalStack, settings: Settings) -> list[str]:
    s3 = stack.client("s3", settings)
    found = s3.list_objects_v2(Bucket=settings.input_bucket, Prefix="uploads/").get("Contents", [])
    return [o["Key"] for o in found if o["Key"].endswith("/manifest.json")]


def counters(stack: LocalStack, settings: Settings) -> int:
    return int(stack.client("dynamodb", settings).scan(TableName=settings.frontdoor_ratelimit_table)["Count"])


# --- 1. the spam relay ------------------------------------------------------------------------
def test_two_requests_no_longer_make_the_worker_email_any_address(
        local_stack: LocalStack, aws_settings: Settings) -> None:
    """Create a job for any address, start it at once: the worker used to mail that address a
    rejection carrying the stranger's text. Now nothing starts without the emailed code, and the
    one email the address gets is the service's own words and the code."""
    doc = {"email": VICTIM, "name": ADVERT[:100], "photos": [
        {"name": f"{ADVERT[:40]} {i}.jpg", "type": "image/jpeg", "size": 1000} for i in range(12)]}
    created = post_json(f"{aws_settings.frontdoor_url}/api/jobs", doc)
    assert created.status == 201, created.text
    job = created.json()
    assert "uploads" not in job and "token" not in job  # no upload, no status page before the proof
    started = post_json(f"{aws_settings.frontdoor_url}/api/jobs/{job['job_id']}/start", {"ticket": job["ticket"]})
    assert started.status == 403, started.text
    assert manifest_keys(local_stack, aws_settings) == []  # nothing for the worker to mail
    sqs = local_stack.client("sqs", aws_settings)
    assert sqs.receive_message(QueueUrl=aws_settings.queue_url, WaitTimeSeconds=0).get("Messages", []) == []
    [mail] = proof_emails(local_stack, job["job_id"])
    raw = mail.as_string()
    assert "cheap-pills" not in raw and "Win a prize" not in raw and "\u202e" not in raw
    assert mail["To"].addresses[0].display_name == "" and not mail.is_multipart()
    assert not {unicodedata.category(ch) for ch in mail.get_content()} & {"Cf", "Co", "Cs"}


# --- 3. a start worth a GPU -------------------------------------------------------------------
def test_a_start_without_ten_photos_in_the_bucket_is_409_with_the_missing_count(
        local_stack: LocalStack, aws_settings: Settings) -> None:
    job = open_job(local_stack, aws_settings, VICTIM)
    assert start(job).status == 409  # nothing uploaded
    upload_all(local_stack, job, count=7)
    refused = start(job)
    assert refused.status == 409, refused.text
    body = refused.json()
    assert body["error"] == "too_few_photos" and body["missing"] == 3 and body["received"] == 7
    assert len(body["missing_files"]) == 5 and "3 more" in body["message"]
    assert manifest_keys(local_stack, aws_settings) == []
    upload_all(local_stack, job)
    assert start(job).status == 202


# --- 4. rate limits that hold -----------------------------------------------------------------
def test_gmail_dot_and_googlemail_variants_count_as_one_inbox(make_aws_settings: Callable[..., Settings]) -> None:
    settings = make_aws_settings(frontdoor_proof_emails_per_address_per_hour=3, frontdoor_jobs_per_address_per_day=3,
                                 frontdoor_proof_emails_per_client_per_hour=50, frontdoor_jobs_per_client_per_hour=50)
    variants = ["ada.lovelace@gmail.com", "adalovelace@gmail.com", "a.d.a.lovelace@gmail.com",
                "ada.lovelace@googlemail.com", "AdaLovelace@GoogleMail.com", "ada.l.ovelace+hs@gmail.com",
                "a.dalovelace@gmail.com"]
    answers = [create(settings, v).status for v in variants]
    assert answers == [201, 201, 201, 429, 429, 429, 429], answers


def test_ipv6_clients_are_counted_per_48_too_and_a_proxy_header_only_when_a_setting_names_the_proxy(
        make_aws_settings: Callable[..., Settings]) -> None:
    behind_cloudfront = make_aws_settings(frontdoor_trusted_proxy="cloudfront", frontdoor_proof_emails_per_client_per_hour=1,
                                          frontdoor_jobs_per_client_per_hour=1)
    answers = [create(behind_cloudfront, f"p{i}@example.com",
                      headers={"CloudFront-Viewer-Address": f"2001:db8:7:{i:x}::1:4431{i % 10}"}).status
               for i in range(12)]  # 12 /64s of one /48: 4 x the client's allowance, then refused
    assert answers == [201] * 4 + [429] * 8, answers
    other = create(behind_cloudfront, "q@example.com", headers={"CloudFront-Viewer-Address": "2001:db8:8::1:443"})
    assert other.status == 201  # another /48 is another site
    # Without the setting, nobody's header is believed: the connection's address counts.
    direct = make_aws_settings(frontdoor_proof_emails_per_client_per_hour=2, frontdoor_jobs_per_client_per_hour=2)
    forged = [create(direct, f"r{i}@example.com", headers={"CloudFront-Viewer-Address": f"198.51.100.{i}:443",
                                                           "X-Forwarded-For": f"203.0.113.{i}"}).status
              for i in range(3)]
    assert forged == [201, 201, 429], forged


def test_a_stranger_who_spends_an_addresss_code_emails_never_blocks_its_owners_start(
        local_stack: LocalStack, make_aws_settings: Callable[..., Settings]) -> None:
    settings = make_aws_settings(frontdoor_proof_emails_per_address_per_hour=2, frontdoor_jobs_per_address_per_day=2,
                                 frontdoor_proof_emails_per_client_per_hour=50, frontdoor_jobs_per_client_per_hour=50)
    owner = create(settings, VICTIM).json()  # the real person asks first, and has the code
    strangers = [create(settings, VICTIM) for _ in range(4)]  # then someone spends the address's emails
    assert [a.status for a in strangers] == [201, 429, 429, 429]
    held = strangers[0].json()  # and guesses codes on the ticket it holds, until it is dead
    right = emailed_code(local_stack, held["job_id"])  # (the stranger cannot read it; the test avoids it)
    guesses = [g for g in (f"{n:06d}" for n in range(6)) if g != right][:5]
    assert [verify(settings, held, g).status for g in guesses] == [400, 400, 400, 400, 429]
    assert verify(settings, {**held, "job_id": owner["job_id"]}, "000000").status == 403  # not the owner's job
    proven = verify(settings, owner, emailed_code(local_stack, owner["job_id"]))
    assert proven.status == 200, proven.text
    job = proven.json()
    upload_all(local_stack, job)
    assert start(job).status == 202  # the owner's start spends only started-job counters


def test_wrong_codes_are_limited_per_job_and_per_address(
        local_stack: LocalStack, make_aws_settings: Callable[..., Settings]) -> None:
    settings = make_aws_settings(frontdoor_proof_emails_per_address_per_hour=10, frontdoor_proof_emails_per_address_per_day=10,
                                 frontdoor_jobs_per_address_per_day=10, frontdoor_proof_emails_per_client_per_hour=50)
    first = create(settings, VICTIM).json()
    code = emailed_code(local_stack, first["job_id"])
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    answers = [verify(settings, first, wrong).status for _ in range(5)]
    assert answers == [400, 400, 400, 400, 429], answers
    locked = verify(settings, first, code)  # even the right code: the job's guesses are spent
    assert locked.status == 429 and locked.json()["error"] == "code_locked"
    second = create(settings, VICTIM).json()
    assert [verify(settings, second, wrong).status for _ in range(5)] == [400, 400, 400, 400, 429]
    # Ten wrong codes for the address today: nobody can buy new guesses with new code emails.
    assert create(settings, VICTIM).status == 429
    assert create(settings, "someone.else@example.com").status == 201


def test_parallel_guesses_cannot_slip_past_the_count(
        local_stack: LocalStack, make_aws_settings: Callable[..., Settings]) -> None:
    settings = make_aws_settings(frontdoor_proof_emails_per_client_per_hour=50)
    job = create(settings, VICTIM).json()
    code = emailed_code(local_stack, job["job_id"])
    guesses = [g for g in (f"{n:06d}" for n in range(25)) if g != code][:24]
    with ThreadPoolExecutor(12) as pool:  # 24 guesses at once, as a script would send them
        answers = [a.json() for a in pool.map(lambda g: verify(settings, job, g), guesses)]
    checked = [a for a in answers if "tries_left" in a]  # the ones whose code was looked at
    assert len(checked) == 5 and sorted(a["tries_left"] for a in checked) == [0, 1, 2, 3, 4]
    assert all(a["error"] == "code_locked" for a in answers if a not in checked)
    assert verify(settings, job, code).status == 429  # dead, even for the right code


def test_a_cross_site_body_that_is_not_application_json_spends_nothing(
        local_stack: LocalStack, aws_settings: Settings) -> None:
    """A page on any site can POST text/plain without a preflight; it must not spend a visitor's
    limits nor send a code email."""
    before, mails = counters(local_stack, aws_settings), len(proof_emails(local_stack))
    body = json.dumps({"email": VICTIM, "name": "Ada", "photos": photo_specs()}).encode()
    for content_type in ("text/plain;charset=json", "text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=json"):
        answer = call(f"{aws_settings.frontdoor_url}/api/jobs", body, {"Content-Type": content_type}, "POST")
        assert answer.status == 415, (content_type, answer.status)
    assert counters(local_stack, aws_settings) == before and len(proof_emails(local_stack)) == mails


def test_without_its_counters_table_the_front_door_refuses_new_jobs(
        local_stack: LocalStack, aws_settings: Settings) -> None:
    """Fail closed: a missing setting must not turn the limits off."""
    unlimited = local_stack.mount_frontdoor(aws_settings.model_copy(update={"frontdoor_ratelimit_table": None}),
                                            f"nolimits-{aws_settings.input_bucket}")
    mails = len(proof_emails(local_stack))
    refused = create(unlimited, VICTIM)
    assert refused.status == 503 and refused.json()["error"] == "not_configured"
    assert len(proof_emails(local_stack)) == mails


def test_a_global_cap_refuses_and_is_logged_for_the_alarm(
        local_stack: LocalStack, make_aws_settings: Callable[..., Settings]) -> None:
    settings = make_aws_settings(frontdoor_proof_emails_per_hour=2, frontdoor_jobs_per_hour=1,
                                 frontdoor_proof_emails_per_client_per_hour=50, frontdoor_jobs_per_client_per_hour=50)
    with structlog.testing.capture_logs() as logs:
        jobs = [create(settings, f"g{i}@example.com") for i in range(3)]
        assert [a.status for a in jobs] == [201, 201, 429]
        proven = [verify(settings, a.json(), emailed_code(local_stack, a.json()["job_id"])).json() for a in jobs[:2]]
        for job in proven:
            upload_all(local_stack, job)
        assert [start(job).status for job in proven] == [202, 429]
    hits = [e for e in logs if e["event"] == "frontdoor_cap_hit"]
    assert [h["cap"] for h in hits] == ["proof_all_hour", "start_all_hour"]


# --- 6. bounded writes ------------------------------------------------------------------------
def test_a_download_link_fetched_in_a_loop_writes_one_click_object(
        local_stack: LocalStack, aws_settings: Settings, job_id: str) -> None:
    published = deliver(local_stack, aws_settings, job_id)
    link = LinkSigner(local_stack.link_keys(aws_settings)[0], aws_settings.frontdoor_url or "").download_url(
        job_id, "headshot-001.jpg", int(published) + 3600)
    for _ in range(5):
        assert call(link).status == 302
    s3 = local_stack.client("s3", aws_settings)
    written = [o["Key"] for prefix in ("feedback/", "clicks/")
               for o in s3.list_objects_v2(Bucket=aws_settings.output_bucket, Prefix=prefix).get("Contents", [])]
    assert len(written) == 1, written


def test_a_rating_with_250_duplicate_favourites_is_a_400_and_stores_nothing(
        local_stack: LocalStack, aws_settings: Settings, job_id: str) -> None:
    published = deliver(local_stack, aws_settings, job_id, n=3)
    gallery = LinkSigner(local_stack.link_keys(aws_settings)[0], aws_settings.frontdoor_url or "").gallery_url(
        job_id, int(published) + 3600)
    rate = gallery.replace(f"/g/{job_id}?", f"/g/{job_id}/rate?")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for body in (b"stars=4" + b"&favourite=headshot-001.jpg" * 250, b"stars=4&favourite=headshot-001.jpg" * 2):
        answer = call(rate, body, form, "POST")
        assert answer.status == 400, answer.status
    s3 = local_stack.client("s3", aws_settings)
    assert s3.list_objects_v2(Bucket=aws_settings.output_bucket, Prefix=f"feedback/{job_id}/").get("KeyCount") == 0


# --- 7. keys and data -------------------------------------------------------------------------
def test_a_status_token_dies_with_the_results(local_stack: LocalStack, aws_settings: Settings) -> None:
    job = open_job(local_stack, aws_settings, VICTIM)
    url = f"{aws_settings.frontdoor_url}/api/jobs/{job['job_id']}/status"
    bearer = {"Authorization": f"Bearer {job['token']}"}
    assert call(url, headers=bearer).status == 200
    deliver(local_stack, aws_settings, job["job_id"], published_at=time.time() - aws_settings.link_ttl_s - 1)
    gone = call(url, headers=bearer)  # delivered, and its results are past their life
    assert gone.status == 410 and "expired" in gone.json()["message"]
    key = local_stack.link_keys(aws_settings)[0]
    old = job_token(key, job["job_id"], int(time.time()) - 1)  # a token past its own expiry
    assert call(url, headers={"Authorization": f"Bearer {old}"}).status == 410

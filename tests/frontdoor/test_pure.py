"""The front door's pure parts: request checks, POST-policy conditions, tickets, rate-limit
decisions, routing, the status view, and the function-URL event round trip."""

from __future__ import annotations

import base64
import json
import time

import pytest

from frontdoor.http import HttpError, Request, Response
from frontdoor.policy import (
    MAX_PHOTO_BYTES,
    PhotoSpec,
    count_uploads,
    parse_job_request,
    upload_conditions,
)
from frontdoor.proof import check_code, proof_code, proof_message
from frontdoor.ratelimit import (
    Limit,
    address_subject,
    client_subjects,
    counter_key,
    decide,
    proof_email_counts,
    start_counts,
)
from frontdoor.routes import route
from frontdoor.tickets import make_ticket, open_ticket, ticket_payload
from processor.settings import Settings
from frontdoor.views import progress_fraction, status_view
from processor.job.state import JobState, JobStatus, ProgressInfo

KEY = b"k" * 48


def photos(n: int = 12, **override: object) -> list[dict[str, object]]:
    return [{"name": f"IMG_{i:04d}.jpg", "type": "image/jpeg", "size": 2_000_000, **override} for i in range(n)]


def request_doc(**override: object) -> dict[str, object]:
    return {"email": "ada@example.com", "name": "Ada", "photos": photos(), **override}


# --- POST /api/jobs checks ----------------------------------------------------------------
def test_a_good_request_becomes_the_manifest_the_worker_reads() -> None:
    job = parse_job_request(request_doc())
    assert job.manifest() == {"version": 1, "email": "ada@example.com", "name": "Ada",
                              "photos": [f"IMG_{i:04d}.jpg" for i in range(12)]}


@pytest.mark.parametrize("doc,code", [
    (request_doc(photos=photos(9)), "photo_count"),
    (request_doc(photos=photos(21)), "photo_count"),
    (request_doc(photos=photos(type="image/gif")), "photo_type"),
    (request_doc(photos=photos(type="image/png")), "photo_type"),  # a .jpg name declared as PNG
    (request_doc(photos=photos(size=MAX_PHOTO_BYTES + 1)), "photo_size"),
    (request_doc(photos=photos(size=0)), "photo_size"),
    (request_doc(photos=photos(size=True)), "photo_size"),
    (request_doc(photos=[*photos(11), photos(1)[0]]), "bad_photos"),  # duplicate name
    (request_doc(photos=[*photos(11), {"name": "a/b.jpg", "type": "image/jpeg", "size": 9}]), "bad_photos"),
    (request_doc(email="not-an-address"), "bad_email"),
    (request_doc(name=""), "bad_name"),
    (request_doc(name="x" * 101), "bad_name"),
    (request_doc(extra=1), "bad_request"),
    ([], "bad_request"),
])
def test_a_bad_request_is_a_400_naming_the_problem(doc: object, code: str) -> None:
    with pytest.raises(HttpError) as err:
        parse_job_request(doc)
    assert err.value.status == 400 and err.value.code == code, err.value.message
    assert "ada@example.com" not in err.value.message


def test_the_portrait_choice_becomes_the_manifests_formats_as_the_workers_schema_reads_it() -> None:
    from processor.manifest import parse_manifest

    both = parse_job_request(request_doc(formats=["portrait", "square"])).manifest()
    assert both["formats"] == ["square", "portrait"]  # the schema's own order
    assert parse_manifest(json.dumps(both)).formats == ["square", "portrait"]
    assert parse_job_request(request_doc(formats=["square"])).manifest()["formats"] == ["square"]
    for unchosen in (request_doc(), request_doc(formats=None)):  # the worker's default then decides
        assert "formats" not in parse_job_request(unchosen).manifest()
    # a choice is the only manifest field a client may send: the rest is the front door's to write
    for smuggled in ({"proof": "p" * 43}, {"version": 1}, {"manifest": {"formats": ["square"]}}):
        with pytest.raises(HttpError) as err:
            parse_job_request(request_doc(formats=["square", "portrait"], **smuggled))
        assert err.value.status == 400 and err.value.code == "bad_request"


@pytest.mark.parametrize("formats,words", [
    (["portrait"], 'must include "square"'),
    (["square", "panorama"], "'square' or 'portrait'"),
    (["square", "square"], "named once"),
    ([], 'must include "square"'),
    ("square,portrait", "valid list"),
    (True, "valid list"),
])
def test_a_bad_formats_choice_is_a_400_in_the_worker_schemas_words(formats: object, words: str) -> None:
    with pytest.raises(HttpError) as err:
        parse_job_request(request_doc(formats=formats))
    assert err.value.status == 400 and err.value.code == "bad_formats"
    assert words in err.value.message and err.value.message.startswith("That choice of formats is not valid")


def test_the_photo_cap_is_the_workers() -> None:
    from handlers.images import ImageLimits

    assert MAX_PHOTO_BYTES == ImageLimits().max_bytes


def test_post_policy_conditions_pin_size_type_and_the_jobs_prefix() -> None:
    conditions = upload_conditions("abc", PhotoSpec("IMG_1.png", "image/png", 5))
    assert ["content-length-range", 1, MAX_PHOTO_BYTES] in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert ["starts-with", "$key", "uploads/abc/"] in conditions


# --- tickets and codes -------------------------------------------------------------------
def test_a_ticket_carries_its_body_only_for_its_kind_and_job_and_until_it_expires() -> None:
    ticket = make_ticket(KEY, "upload", "job-1", {"manifest": {"email": "ada@example.com"}}, expires_at=1000)
    assert open_ticket([KEY], "upload", ticket, "job-1", now=999) == {"manifest": {"email": "ada@example.com"}}
    for keys, kind, job, now, status in (([KEY], "upload", "job-2", 999, 403), ([b"o" * 48], "upload", "job-1", 999, 403),
                                         ([KEY], "proof", "job-1", 999, 403), ([KEY], "upload", "job-1", 1000, 410)):
        with pytest.raises(HttpError) as err:
            open_ticket(keys, kind, ticket, job, now)  # type: ignore[arg-type]
        assert err.value.status == status
    payload, sig = ticket.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"kind": "upload", "job": "job-1", "exp": 10**10, "body": {
        "manifest": {"email": "other@example.com"}}}).encode()).rstrip(b"=").decode()
    for bad in (f"{forged}.{sig}", "x", None, 7, ticket + "."):
        with pytest.raises(HttpError) as err:
            open_ticket([KEY], "upload", bad, "job-1", 999)
        assert err.value.status == 403


def test_a_code_is_six_digits_bound_to_its_ticket_and_key() -> None:
    one = make_ticket(KEY, "proof", "job-1", {"manifest": {"email": "ada@example.com"}}, 1000)
    two = make_ticket(KEY, "proof", "job-2", {"manifest": {"email": "ada@example.com"}}, 1000)
    code = proof_code(KEY, ticket_payload(one))
    assert len(code) == 6 and code.isdigit()
    assert check_code([b"o" * 48, KEY], ticket_payload(one), code)
    assert not check_code([b"o" * 48], ticket_payload(one), code)
    assert proof_code(KEY, ticket_payload(two)) != code  # (1 in a million to collide by chance)
    for bad in ("", "12345", "1234567", "abcdef", " " + code[1:], code + " "):
        assert not check_code([KEY], ticket_payload(one), bad)


def test_the_code_email_carries_only_the_services_words_and_the_code() -> None:
    msg = proof_message("headshots@example.com", "ada@example.com", "123456", "job-1", 30)
    text = msg.get_content()
    assert "123456" in str(msg["Subject"]) and "123456" in text and "30 minutes" in text
    assert msg["To"] == "ada@example.com" and msg["X-Headshots-Proof"] == "job-1" and msg["X-Headshots-Job"] is None
    assert not msg.is_multipart() and "http" not in text  # no link: mail scanners follow links


# --- uploads at start --------------------------------------------------------------------
def test_start_counts_listed_photos_in_the_bucket_within_the_size_limits() -> None:
    listed = [f"p{i}.jpg" for i in range(12)]
    uploaded = {**{f"p{i}.jpg": 1000 for i in range(9)}, "p9.jpg": 0, "p10.jpg": MAX_PHOTO_BYTES + 1,
                "extra.jpg": 1000, "manifest.json": 10}
    count = count_uploads(listed, uploaded)
    assert len(count.received) == 9 and count.short_by == 1
    assert count.missing == ("p9.jpg", "p10.jpg", "p11.jpg")
    assert count_uploads(listed, {n: 1 for n in listed}).short_by == 0


# --- rate limits -------------------------------------------------------------------------
def test_rate_limit_decisions_and_retry_after() -> None:
    hour = Limit("client", 10, 3600)
    day = Limit("address", 5, 86400)
    assert decide({hour: 10, day: 5}, now=7200.0).allowed
    d = decide({hour: 11, day: 1}, now=7200.0 + 600)
    assert not d.allowed and d.limit == "client" and d.retry_after_s == 3000 and not d.alarm
    assert decide({hour: 1, day: 6}, now=86400.0 * 3 + 1).retry_after_s == 86399
    assert decide({Limit("all", 1, 3600, alarm=True): 2}, now=1.0).alarm


def test_addresses_count_as_the_inbox_they_deliver_to() -> None:
    assert address_subject(" Ada+Work@Example.COM ") == "ada@example.com"
    gmail = {"ada.lovelace@gmail.com", "AdaLovelace@gmail.com", "a.d.a.l.o.v.e.l.a.c.e@gmail.com",
             "ada.lovelace+hs@googlemail.com", "adalovelace@GoogleMail.com", "Ada.Lovelace+1@Gmail.com"}
    assert {address_subject(a) for a in gmail} == {"adalovelace@gmail.com"}
    assert address_subject("ada.lovelace@example.com") == "ada.lovelace@example.com"  # dots matter elsewhere


def test_clients_are_ipv4_addresses_or_ipv6_64s_and_48s() -> None:
    assert client_subjects("203.0.113.9") == {"client": "203.0.113.9"}
    assert client_subjects("::ffff:10.0.0.1") == {"client": "10.0.0.1"}
    assert client_subjects("bogus") == {"client": "unknown"}
    a, b = client_subjects("2001:db8:1:1::1"), client_subjects("2001:db8:1:2::ffff")
    assert a["client"] == "2001:db8:1:1::/64" and b["client"] == "2001:db8:1:2::/64"
    assert a["network"] == b["network"] == "2001:db8:1::/48"


def test_two_sets_of_limits_and_the_network_allowance() -> None:
    settings = Settings(frontdoor_jobs_per_client_per_hour=3, frontdoor_proof_emails_per_client_per_hour=2)
    proof = {c.limit.name: c for c in proof_email_counts(settings, "a.da@googlemail.com", "2001:db8::1")}
    start = {c.limit.name: c for c in start_counts(settings, "a.da@googlemail.com", "2001:db8::1")}
    assert set(proof) == {"proof_address_hour", "proof_address_day", "proof_client_hour", "proof_network_hour",
                          "proof_all_hour"}
    assert set(start) == {"start_address_day", "start_client_hour", "start_network_hour", "start_all_hour"}
    assert not set(proof) & set(start)  # a stranger's code emails never spend the owner's starts
    assert proof["proof_network_hour"].limit.allowed == 8 and start["start_network_hour"].limit.allowed == 12
    assert proof["proof_address_hour"].subject == "ada@gmail.com"
    assert proof["proof_all_hour"].limit.alarm and start["start_all_hour"].limit.alarm


def test_counter_keys_hold_no_personal_data() -> None:
    key = counter_key(KEY, Limit("address", 5, 86400), "ada@example.com", 90000.0)
    assert key.startswith("address#") and key.endswith("#86400") and "ada" not in key
    assert key != counter_key(b"o" * 48, Limit("address", 5, 86400), "ada@example.com", 90000.0)
    assert counter_key(KEY, Limit("job", 5, 0), "job-1", 1.0) == counter_key(KEY, Limit("job", 5, 0), "job-1", 9e9)


# --- routing and HTTP --------------------------------------------------------------------
@pytest.mark.parametrize("method,path,name", [
    ("GET", "/", "upload_page"), ("POST", "/api/jobs", "create_job"), ("HEAD", "/d/j/headshot-001.jpg", "download"),
    ("GET", "/api/jobs/j/status", "job_status"), ("POST", "/g/j/rate", "rate"), ("GET", "/static/upload.js", "static"),
])
def test_routes(method: str, path: str, name: str) -> None:
    assert route(method, path).name == name


def test_unknown_paths_are_404_and_wrong_methods_405() -> None:
    for path in ("/nope", "/d/j", "/static/../app.py", "/static/x.py"):
        with pytest.raises(HttpError) as err:
            route("GET", path)
        assert err.value.status == 404
    with pytest.raises(HttpError) as err:
        route("DELETE", "/api/jobs")
    assert err.value.status == 405 and err.value.headers["Allow"] == "POST"


def test_function_url_event_round_trip() -> None:
    event = {"version": "2.0", "rawPath": "/d/j/a%20b.jpg", "rawQueryString": "exp=1&sig=x&exp=2",
             "headers": {"Content-Type": "application/json", "Authorization": "Bearer tok"},
             "requestContext": {"domainName": "abc.lambda-url.us-east-1.on.aws",
                                "http": {"method": "post", "sourceIp": "203.0.113.9"}},
             "body": base64.b64encode(b'{"a": 1}').decode(), "isBase64Encoded": True}
    req = Request.from_event(event)
    assert (req.method, req.path, req.query, req.source_ip) == ("POST", "/d/j/a%20b.jpg", {"exp": "1", "sig": "x"},
                                                                 "203.0.113.9")
    assert req.json() == {"a": 1} and req.bearer() == "tok" and req.domain.endswith(".on.aws")
    binary = Response(200, b"\xff\xd8", {"Content-Type": "image/jpeg"}).to_result()
    assert binary["isBase64Encoded"] and base64.b64decode(binary["body"]) == b"\xff\xd8"
    text = Response(200, b"{}", {"Content-Type": "application/json"}).to_result()
    assert text["body"] == "{}" and text["headers"]["Referrer-Policy"] == "no-referrer"


def test_a_body_that_is_not_json_is_refused_before_anything_else() -> None:
    assert Request("POST", "/", headers={"content-type": "Application/JSON; charset=utf-8"}, body=b"{}").json() == {}
    for headers, body, status in (({"content-type": "text/plain"}, b"{}", 415),
                                  ({"content-type": "text/plain;charset=json"}, b"{}", 415),
                                  ({"content-type": "application/json-patch+json"}, b"{}", 415),
                                  ({}, b"{}", 415),
                                  ({"content-type": "application/json"}, b"{", 400),
                                  ({"content-type": "application/json"}, b" " * 70000, 413)):
        with pytest.raises(HttpError) as err:
            Request("POST", "/api/jobs", headers=headers, body=body).json()
        assert err.value.status == status


def test_the_client_address_comes_from_a_proxy_header_only_when_the_setting_names_the_proxy() -> None:
    headers = {"cloudfront-viewer-address": "2001:db8:7::1:51234", "x-forwarded-for": "198.51.100.7"}
    req = Request("POST", "/api/jobs", headers=headers, source_ip="203.0.113.9")
    assert req.client_ip() == req.client_ip("none") == "203.0.113.9"  # anybody can send any header
    assert req.client_ip("cloudfront") == "2001:db8:7::1"
    assert Request("GET", "/", headers={"cloudfront-viewer-address": "198.51.100.10:46532"}).client_ip(
        "cloudfront") == "198.51.100.10"
    assert Request("GET", "/", source_ip="203.0.113.9").client_ip("cloudfront") == "203.0.113.9"


# --- the status view ---------------------------------------------------------------------
def test_status_view_shows_progress_and_rejected_photos_but_nothing_internal() -> None:
    now = time.time()
    s = JobStatus.new("j", now).transition(JobState.VALIDATING, now).start_stage("validate", now)
    s = s.finish_stage("validate", now).transition(JobState.TRAINING, now).start_stage("train", now)
    s = s.with_progress(ProgressInfo(stage="train", step=50, total=100), now).with_owner("worker-1", now)
    view = status_view("j", s)
    assert view["state"] == "training" and view["step"]["step"] == 50
    assert view["progress"] == pytest.approx(0.05 + 0.45 / 2)
    assert "owner" not in json.dumps(view) and "worker-1" not in json.dumps(view)
    assert status_view("j", None)["state"] == "queued" and progress_fraction(None) == 0.0
    validation = {"usable": 3, "required": 10, "photos": [
        {"file": "a.jpg", "ok": True, "sharpness": 9.0},
        {"file": "b.jpg", "ok": False, "reason": "blurry", "message": "Use a sharper photo.", "sharpness": 1.0}]}
    rejected = JobStatus.new("j", now).transition(JobState.VALIDATING, now).end(
        JobState.REJECTED, now, error="Only 3 usable photos.", validation=validation)
    view = status_view("j", rejected)
    assert view["rejected"] == [{"photo": 2, "file": "photo 2", "reason": "blurry", "advice": "Use a sharper photo."}]
    assert view["usable"] == 3 and view["terminal"] and "sharpness" not in json.dumps(view)

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
    parse_job_request,
    upload_conditions,
)
from frontdoor.ratelimit import (
    Limit,
    address_subject,
    client_subject,
    counter_key,
    decide,
)
from frontdoor.routes import route
from frontdoor.tickets import make_ticket, open_ticket
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


def test_the_photo_cap_is_the_workers() -> None:
    from handlers.images import ImageLimits

    assert MAX_PHOTO_BYTES == ImageLimits().max_bytes


def test_post_policy_conditions_pin_size_type_and_the_jobs_prefix() -> None:
    conditions = upload_conditions("abc", PhotoSpec("IMG_1.png", "image/png", 5))
    assert ["content-length-range", 1, MAX_PHOTO_BYTES] in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert ["starts-with", "$key", "uploads/abc/"] in conditions


# --- tickets -----------------------------------------------------------------------------
def test_a_ticket_carries_its_manifest_only_for_its_job_and_until_it_expires() -> None:
    ticket = make_ticket(KEY, "job-1", {"email": "ada@example.com"}, expires_at=1000)
    assert open_ticket([KEY], ticket, "job-1", now=999) == {"email": "ada@example.com"}
    for keys, job, now, status in (([KEY], "job-2", 999, 403), ([b"o" * 48], "job-1", 999, 403),
                                   ([KEY], "job-1", 1000, 410)):
        with pytest.raises(HttpError) as err:
            open_ticket(keys, ticket, job, now)
        assert err.value.status == status
    payload, sig = ticket.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"job": "job-1", "exp": 10**10, "manifest": {
        "email": "other@example.com"}}).encode()).rstrip(b"=").decode()
    for bad in (f"{forged}.{sig}", "x", None, 7, ticket + "."):
        with pytest.raises(HttpError) as err:
            open_ticket([KEY], bad, "job-1", 999)
        assert err.value.status == 403


# --- rate limits -------------------------------------------------------------------------
def test_rate_limit_decisions_and_retry_after() -> None:
    hour = Limit("client", 10, 3600)
    day = Limit("address", 5, 86400)
    assert decide({hour: 10, day: 5}, now=7200.0).allowed
    d = decide({hour: 11, day: 1}, now=7200.0 + 600)
    assert not d.allowed and d.limit == "client" and d.retry_after_s == 3000
    assert decide({hour: 1, day: 6}, now=86400.0 * 3 + 1).retry_after_s == 86399


def test_rate_limit_subjects_and_keys_hold_no_personal_data() -> None:
    assert address_subject(" Ada+Work@Example.COM ") == "ada@example.com"
    assert client_subject("2001:db8::1") == client_subject("2001:db8::ffff") == "2001:db8::/64"
    assert client_subject("::ffff:10.0.0.1") == "10.0.0.1" and client_subject("bogus") == "unknown"
    key = counter_key(KEY, Limit("address", 5, 86400), "ada@example.com", 90000.0)
    assert key.startswith("address#") and key.endswith("#86400") and "ada" not in key
    assert key != counter_key(b"o" * 48, Limit("address", 5, 86400), "ada@example.com", 90000.0)


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
    for headers, body, status in (({"content-type": "text/plain"}, b"{}", 415),
                                  ({"content-type": "application/json"}, b"{", 400),
                                  ({"content-type": "application/json"}, b" " * 70000, 413)):
        with pytest.raises(HttpError) as err:
            Request("POST", "/api/jobs", headers=headers, body=body).json()
        assert err.value.status == status


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
    assert view["rejected"] == [{"file": "b.jpg", "reason": "blurry", "advice": "Use a sharper photo."}]
    assert view["usable"] == 3 and view["terminal"] and "sharpness" not in json.dumps(view)

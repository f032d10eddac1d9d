"""The front door's request handling: one method per route, I/O through :class:`FrontDoorAws`.

Every refusal is an :class:`HttpError` raised before anything is written: a bad request gets
a clear 4xx (JSON for ``/api``, a page otherwise) and touches nothing. Logs name the route,
the status and the job id; never a query string (signatures), an address or an IP.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from importlib.resources import files
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import structlog
from pydantic import ValidationError

from frontdoor import pages
from frontdoor.aws import FrontDoorAws
from frontdoor.http import (
    HttpError,
    Request,
    Response,
    html_response,
    json_response,
    redirect,
)
from frontdoor.policy import (
    CONTENT_TYPES,
    MAX_PHOTO_BYTES,
    MAX_PHOTOS,
    MIN_PHOTOS,
    PhotoSpec,
    count_uploads,
    parse_job_request,
    upload_conditions,
    upload_fields,
    upload_key,
)
from frontdoor.proof import check_code, proof_code, proof_message, well_formed
from frontdoor.ratelimit import (
    WRONG_CODES_PER_JOB,
    Count,
    counter_expiry,
    counter_key,
    decide,
    proof_email_counts,
    start_counts,
    wrong_code_counts,
)
from frontdoor.routes import route
from frontdoor.tickets import make_ticket, open_ticket, ticket_payload
from frontdoor.views import gallery_items, status_view
from processor.errors import InvalidJobId
from processor.job.feedback import Click, Rating, RunSettings, click_key, rating_key
from processor.job.state import JobState, JobStatus
from processor.links import (
    FILE_NAME,
    LinkCheck,
    LinkSigner,
    address_proof,
    check,
    check_job_token,
    download_parts,
    gallery_parts,
    job_token,
)
from processor.manifest import validate_job_id
from processor.settings import Settings

log = structlog.get_logger("frontdoor")

STATIC_TYPES = {".js": "application/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
#: A status token outlives its job's start by this much beyond the job's longest run, then the
#: results' life; an ended job's token also dies with its results (see ``_job_status``).
TOKEN_SLACK_S = 2 * 86400


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class FrontDoor:
    """The whole front door for one deployment (one pair of buckets)."""

    def __init__(self, settings: Settings, aws: FrontDoorAws, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.aws = aws
        self.clock = clock

    # --- entry point -----------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        name, job = "unknown", None
        try:
            match = route(request.method, request.path)
            name, job = match.name, match.params.get("job")
            response = getattr(self, f"_{match.name}")(request, **match.params)
        except HttpError as exc:
            response = self._refusal(request, exc)
        except Exception as exc:  # noqa: BLE001 - the person gets a page, the log the error
            log.error("frontdoor_error", route=name, error=exc)
            response = self._refusal(request, HttpError(500, "internal", "Something went wrong on our side. "
                                                                         "Please try again in a minute."))
        log.info("frontdoor_request", route=name, method=request.method, status=response.status,
                 job_id=job if response.status < 400 else None, ms=round(1000 * (time.perf_counter() - started), 1))
        if request.method == "HEAD":
            response = Response(response.status, b"", response.headers)
        return response

    def _refusal(self, request: Request, exc: HttpError) -> Response:
        if request.path.startswith("/api/"):
            return json_response(exc.status, {**exc.extra, "error": exc.code, "message": exc.message}, exc.headers)
        page = pages.render("message.html", base=self.base_path, title=pages.TITLES.get(exc.status, "Sorry"),
                            message=exc.message, code=exc.code)
        return html_response(exc.status, page, {**exc.headers, **self._csp()})

    # --- helpers ---------------------------------------------------------------------
    def public_url(self, request: Request) -> str:
        """Where people reach this front door: the configured URL, else the function URL's host."""
        return self.settings.frontdoor_url or f"https://{request.domain}"

    @property
    def base_path(self) -> str:
        """The path the front door is mounted under (empty on a function URL)."""
        return urlsplit(self.settings.frontdoor_url or "").path.rstrip("/")

    def signer(self, request: Request) -> LinkSigner:
        return LinkSigner(self.aws.signing_key(), self.public_url(request))

    @cached_property
    def _bucket_origins(self) -> tuple[str, str]:
        """The S3 origins the pages talk to: uploads (POST) and results (image redirects)."""
        post = self.aws.presign_post("uploads/origin-probe/x.jpg", {}, [])
        get = self.aws.presign_get("origin-probe", "x.jpg", "inline")
        return _origin(post.url), _origin(get)

    def _csp(self, connect_uploads: bool = False) -> dict[str, str]:
        uploads, results = self._bucket_origins
        connect = f"'self' {uploads}" if connect_uploads else "'self'"
        return {"Content-Security-Policy": (
            f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: {results}; "
            f"connect-src {connect}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")}

    @staticmethod
    def _job(job: str, status: int = 404) -> str:
        try:
            return validate_job_id(job)
        except InvalidJobId:
            raise HttpError(status, "not_found", "There is no such job.") from None

    def _check_link(self, result: LinkCheck) -> None:
        if result is LinkCheck.BAD:
            raise HttpError(403, "bad_link", "This link is not valid. Please use the link from your email as it is.")
        if result is LinkCheck.EXPIRED:
            raise HttpError(410, "expired", "This link has expired, and the headshots it pointed to have been "
                                            "deleted as promised. Thank you for using us.")

    # --- pages and static files ------------------------------------------------------
    def _health(self, request: Request) -> Response:
        return Response(200, b"ok", {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"})

    def _static(self, request: Request, name: str) -> Response:
        resource = files("frontdoor").joinpath("static", name)
        if not resource.is_file():
            raise HttpError(404, "not_found", "There is nothing here.")
        kind = STATIC_TYPES[name[name.rindex("."):]]
        return Response(200, resource.read_bytes(), {"Content-Type": kind, "Cache-Control": "public, max-age=300"})

    def _upload_page(self, request: Request) -> Response:
        extensions = sorted({e for names in CONTENT_TYPES.values() for e in names})
        page = pages.render("upload.html", base=self.base_path, min_photos=MIN_PHOTOS, max_photos=MAX_PHOTOS,
                            max_mb=MAX_PHOTO_BYTES // 2**20, accept=",".join([*CONTENT_TYPES, *extensions]),
                            types=json.dumps(CONTENT_TYPES, separators=(",", ":")),
                            code_minutes=self.settings.frontdoor_proof_ttl_s // 60)
        return html_response(200, page, self._csp(connect_uploads=True))

    def _status_page(self, request: Request, job: str) -> Response:
        job_id = self._job(job)
        page = pages.render("status.html", base=self.base_path, job_id=job_id)
        return html_response(200, page, self._csp())

    # --- the upload API: create (code email), verify (the code), start (the manifest) ------
    def _require_limits(self) -> None:
        """Fail closed: without its counters the front door would be a free mailer and GPU."""
        if self.aws.dynamodb is None:
            log.error("frontdoor_not_configured", missing="HEADSHOTS_FRONTDOOR_RATELIMIT_TABLE")
            raise HttpError(503, "not_configured", "We cannot take new jobs right now. Please try again later.")

    def _take(self, counts: Sequence[Count], key: bytes, now: float, message: str) -> list[tuple[str, int]]:
        """Count this request against each counter in turn; a refusal gives back what it took, so
        the counters count what was done (and a refused address costs the client nothing)."""
        taken: list[tuple[str, int]] = []
        for item in counts:
            counter, expires = counter_key(key, item.limit, item.subject, now), counter_expiry(item.limit, now)
            decision = decide({item.limit: self.aws.increment(counter, expires)}, now)
            taken.append((counter, expires))
            if not decision.allowed:
                self._give_back(taken)
                if decision.alarm:  # a global cap: the metric filter on this event raises the alarm
                    log.error("frontdoor_cap_hit", cap=decision.limit)
                log.info("rate_limited", limit=decision.limit)
                raise HttpError(429, "rate_limited", f"{message} Please try again in "
                                f"{max(1, decision.retry_after_s // 60)} minutes.",
                                {"Retry-After": str(decision.retry_after_s)})
        return taken

    def _give_back(self, taken: Sequence[tuple[str, int]]) -> None:
        for counter, expires in taken:
            self.aws.increment(counter, expires, -1)

    def _create_job(self, request: Request) -> Response:
        """Check the request, then email a code to the address: nothing else is sent to it, and
        nothing can be uploaded or started, until the code comes back (``.../verify``)."""
        job_request = parse_job_request(request.json())
        self._require_limits()
        now, key = self.clock(), self.aws.signing_key()
        address_guesses = wrong_code_counts("-", job_request.email)[1]
        if self.aws.count(counter_key(key, address_guesses.limit, address_guesses.subject, now)) \
                >= address_guesses.limit.allowed:
            log.info("rate_limited", limit=address_guesses.limit.name)
            raise HttpError(429, "rate_limited", "Too many wrong codes were entered for this address today. "
                                                 "Please try again tomorrow.")
        client = request.client_ip(self.settings.frontdoor_trusted_proxy)
        taken = self._take(proof_email_counts(self.settings, job_request.email, client), key, now,
                           "Too many new jobs from here or for this address.")
        job_id = secrets.token_hex(16)  # 128 random bits; a valid job id by construction
        expires = int(now) + self.settings.frontdoor_proof_ttl_s
        body = {"manifest": job_request.manifest(), "types": [p.content_type for p in job_request.photos]}
        ticket = make_ticket(key, "proof", job_id, body, expires)
        message = proof_message(self.settings.email_sender, job_request.email,
                                proof_code(key, ticket_payload(ticket)), job_id,
                                self.settings.frontdoor_proof_ttl_s // 60)
        try:
            self.aws.send_email(message)
        except Exception as exc:  # noqa: BLE001 - nothing was sent: the counters get their count back
            self._give_back(taken)
            log.error("proof_email_failed", job_id=job_id, error=type(exc).__name__)
            raise HttpError(503, "email_unavailable", "We could not send the code email just now. "
                                                      "Please try again in a few minutes.") from None
        log.info("job_created", job_id=job_id, photos=len(job_request.photos))
        return json_response(201, {"job_id": job_id, "ticket": ticket, "expires_at": expires,
                                   "verify_url": f"{self.public_url(request)}/api/jobs/{job_id}/verify"})

    def _verify_job(self, request: Request, job: str) -> Response:
        """The code from the email: right, and the job gets its upload policies and the ticket
        that can start it (its manifest now carries the address proof); wrong, and it costs one
        of the job's few guesses and one of the address's."""
        job_id = self._job(job)
        doc = request.json()
        ticket, code = (doc.get("ticket"), doc.get("code")) if isinstance(doc, dict) else (None, None)
        self._require_limits()
        now, keys, key = self.clock(), self.aws.signing_keys(), self.aws.signing_key()
        body = open_ticket(keys, "proof", ticket, job_id, now)
        manifest = dict(body["manifest"])
        if not well_formed(code):
            raise HttpError(400, "bad_code", "Enter the 6-digit code from the email.")
        per_job, per_address = wrong_code_counts(job_id, manifest["email"])
        job_counter = counter_key(key, per_job.limit, per_job.subject, now)
        if self.aws.count(job_counter) >= WRONG_CODES_PER_JOB:
            raise HttpError(429, "code_locked", "Too many wrong codes were entered for this upload. "
                                                "Please start again to get a new code.")
        if not check_code(keys, ticket_payload(str(ticket)), str(code)):
            wrong = self.aws.increment(job_counter, counter_expiry(per_job.limit, now))
            self.aws.increment(counter_key(key, per_address.limit, per_address.subject, now),
                               counter_expiry(per_address.limit, now))
            left = max(0, WRONG_CODES_PER_JOB - wrong)
            log.info("wrong_code", job_id=job_id, left=left)
            raise HttpError(400 if left else 429, "wrong_code" if left else "code_locked",
                            f"That code is not right: {left} tr{'y' if left == 1 else 'ies'} left." if left else
                            "That code is not right, and that was the last try. Please start again.",
                            extra={"tries_left": left})
        manifest["proof"] = address_proof(key, job_id, manifest["email"])
        expires = int(now) + self.settings.frontdoor_upload_ttl_s + 300
        token_expires = int(now) + self.settings.frontdoor_upload_ttl_s + self.settings.max_job_duration_s + \
            TOKEN_SLACK_S + self.settings.link_ttl_s
        uploads = []
        for name, ctype in zip(manifest["photos"], body["types"], strict=True):
            photo = PhotoSpec(name=name, content_type=ctype, size=0)
            policy = self.aws.presign_post(upload_key(job_id, photo), upload_fields(photo),
                                           upload_conditions(job_id, photo))
            uploads.append({"name": name, "url": policy.url, "fields": policy.fields})
        base = self.public_url(request)
        token = job_token(key, job_id, token_expires)
        log.info("address_proven", job_id=job_id)
        return json_response(200, {
            "job_id": job_id, "token": token, "uploads": uploads, "expires_at": expires,
            "ticket": make_ticket(key, "upload", job_id, {"manifest": manifest}, expires),
            "start_url": f"{base}/api/jobs/{job_id}/start", "status_url": f"{base}/s/{job_id}#{token}"})

    def _start_job(self, request: Request, job: str) -> Response:
        """Start a proven job that is worth a GPU: at least the minimum of its listed photos are
        in the bucket, within the size limits (one listing of ``uploads/<job>/``); then its
        address, client and the global started-job counters; then the manifest, last, once."""
        job_id = self._job(job)
        doc = request.json()
        ticket = doc.get("ticket") if isinstance(doc, dict) else None
        self._require_limits()
        now, keys = self.clock(), self.aws.signing_keys()
        manifest = open_ticket(keys, "upload", ticket, job_id, now)["manifest"]
        count = count_uploads(manifest["photos"], self.aws.uploaded(job_id))
        if count.short_by:
            log.info("job_too_few_photos", job_id=job_id, received=len(count.received), short_by=count.short_by)
            raise HttpError(409, "too_few_photos", (
                f"We have {len(count.received)} of your photos, and need at least {MIN_PHOTOS}: "
                f"{count.short_by} more must arrive. Press the button again to resend the "
                f"{len(count.missing)} that did not reach us."),
                extra={"missing": count.short_by, "received": len(count.received), "required": MIN_PHOTOS,
                       "missing_files": list(count.missing)})
        client = request.client_ip(self.settings.frontdoor_trusted_proxy)
        taken = self._take(start_counts(self.settings, manifest["email"], client), self.aws.signing_key(), now,
                           "Too many jobs started from here or for this address.")
        if not self.aws.put_manifest(job_id, manifest):
            self._give_back(taken)
            raise HttpError(409, "already_started", "This upload has already been started.")
        log.info("job_started", job_id=job_id, photos=len(count.received))
        return json_response(202, {"job_id": job_id, "state": "queued"})

    def _job_status(self, request: Request, job: str) -> Response:
        """The status page's poll: the job's token, valid until it expires and, once the job has
        ended, only as long as its results are kept."""
        job_id = self._job(job)
        now = self.clock()
        token = check_job_token(self.aws.signing_keys(), job_id, request.bearer(), now)
        if token is LinkCheck.BAD:
            raise HttpError(403, "bad_token", "This status link is not valid.")
        status = self.aws.status(job_id)
        if token is LinkCheck.EXPIRED or (status is not None and now >= self._results_end(status)):
            raise HttpError(410, "expired", "This status link has expired: the job's results and photos have "
                                            "been deleted as promised.")
        view = status_view(job_id, status)
        published = (status.result or {}).get("published_at") if status is not None else None
        if status is not None and status.state is JobState.DELIVERED and published:
            expires = int(published) + self.settings.link_ttl_s
            if now < expires:
                view["gallery_url"] = self.signer(request).gallery_url(job_id, expires)
                view["expires_at"] = expires
        return json_response(200, view)

    def _results_end(self, status: JobStatus) -> float:
        """When an ended job's results are gone (a job that has not ended: never)."""
        if not status.is_terminal:
            return float("inf")
        ended = (status.result or {}).get("published_at") or status.updated_at
        return float(ended) + self.settings.link_ttl_s

    # --- the gallery, ratings, downloads ---------------------------------------------
    def _gallery(self, request: Request, job: str) -> Response:
        job_id = self._job(job, 403)
        now = self.clock()
        self._check_link(check(self.aws.signing_keys(), request.query.get("sig"), request.query.get("exp"), now,
                               *gallery_parts(job_id)))
        results = self.aws.results_doc(job_id)
        if results is None:
            self._check_link(LinkCheck.EXPIRED)
        assert results is not None
        expires = int(request.query["exp"])
        signer = self.signer(request)
        items = [{**item, "url": signer.download_url(job_id, item["file"], expires)}
                 for item in gallery_items(results)]
        summary = results.get("summary") or {}
        stars = request.query.get("stars", "")
        page = pages.render(
            "gallery.html", base=self.base_path, job_id=job_id, items=items, expires_at=expires,
            expires_text=pages.when(expires),
            zip_url=signer.download_url(job_id, "headshots.zip", expires),
            sheet_url=signer.download_url(job_id, "contact-sheet.jpg", expires),
            rate_action=f"{self.base_path}/g/{quote(job_id)}/rate?" + urlencode(
                {"exp": expires, "sig": request.query["sig"]}),
            stars=int(stars) if stars in ("1", "2", "3", "4", "5") else None,
            rated=request.query.get("rated") == "1", report_mode=summary.get("mode") == "report")
        return html_response(200, page, self._csp())

    def _rate(self, request: Request, job: str) -> Response:
        job_id = self._job(job, 403)
        now = self.clock()
        self._check_link(check(self.aws.signing_keys(), request.query.get("sig"), request.query.get("exp"), now,
                               *gallery_parts(job_id)))
        form = request.form()
        stars = (form.get("stars") or [""])[0]
        if stars not in ("1", "2", "3", "4", "5"):
            raise HttpError(400, "bad_rating", "Choose from one to five stars.")
        results = self.aws.results_doc(job_id)
        if results is None:
            self._check_link(LinkCheck.EXPIRED)
        assert results is not None
        delivered = {item["file"] for item in gallery_items(results)}
        favourites = form.get("favourite", [])
        if len(favourites) > len(delivered) or not set(favourites) <= delivered \
                or not all(FILE_NAME.fullmatch(f) for f in favourites):
            raise HttpError(400, "bad_favourites", "Favourites must be headshots of this set, each at most once.")
        try:
            rating = Rating(job_id=job_id, stars=int(stars), favourites=favourites, rated_at=now,
                            run=RunSettings.from_results(results))
        except ValidationError:
            raise HttpError(400, "bad_rating", "That rating could not be read.") from None
        self.aws.put_feedback(rating_key(job_id), rating.model_dump())
        log.info("rating_recorded", job_id=job_id, stars=rating.stars, favourites=len(rating.favourites))
        back = f"{self.base_path}/g/{quote(job_id)}?" + urlencode(
            {"exp": request.query["exp"], "sig": request.query["sig"], "stars": stars, "rated": "1"})
        return redirect(back + "#rate", 303)

    def _download(self, request: Request, job: str, file: str) -> Response:
        job_id = self._job(job, 403)
        if not FILE_NAME.fullmatch(file):
            raise HttpError(403, "bad_link", "This link is not valid. Please use the link from your email as it is.")
        now = self.clock()
        self._check_link(check(self.aws.signing_keys(), request.query.get("sig"), request.query.get("exp"), now,
                               *download_parts(job_id, file)))
        if not self.aws.result_exists(job_id, file):
            raise HttpError(410, "gone", "This file is no longer available.")
        view = request.query.get("view") == "1"
        location = self.aws.presign_get(job_id, file, "inline" if view else "attachment")
        if not view and request.method == "GET":
            self._record_click(job_id, file, now)
        return redirect(location)

    def _record_click(self, job_id: str, file: str, now: float) -> None:
        """A download counts toward the metrics, once per file and hour (If-None-Match: a link
        fetched in a loop writes one object an hour); failing to count never fails the download."""
        try:
            self.aws.put_feedback(click_key(job_id, file, now), Click(job_id=job_id, file=file, at=now).model_dump(),
                                  once=True)
        except Exception as exc:  # noqa: BLE001
            log.warning("click_not_recorded", job_id=job_id, error=exc)


def build_app(settings: Settings, **kwargs: Any) -> FrontDoor:
    return FrontDoor(settings, FrontDoorAws(settings, **kwargs))

"""The upload API: create a job (the code email), verify the code (upload policies), start it.

Part of :class:`frontdoor.app.FrontDoor` (its routes ``create_job``, ``verify_job`` and
``start_job``), kept apart because it is where the front door meets strangers: every step
is rate-limited (:mod:`frontdoor.ratelimit`), the counters fail closed, and nothing is sent to
an address, uploaded or started before the address's owner has entered the emailed code.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

import structlog

from frontdoor.aws import FrontDoorAws
from frontdoor.http import HttpError, Request, Response, json_response
from frontdoor.policy import (
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
from frontdoor.tickets import make_ticket, open_ticket, ticket_payload
from processor.links import address_proof, job_token
from processor.send_rule import SendFailed, Verdict
from processor.settings import Settings

log = structlog.get_logger("frontdoor")

#: A status token outlives its job's start by this much beyond the job's longest run, then the
#: results' life; an ended job's token also dies with its results (``FrontDoor._job_status``).
TOKEN_SLACK_S = 2 * 86400


class JobApi:
    """The job-creation routes; the host class provides settings, AWS, the clock and URLs."""

    settings: Settings
    aws: FrontDoorAws
    clock: Callable[[], float]
    public_url: Callable[[Request], str]
    _job: Callable[..., str]

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
        except SendFailed as exc:
            if exc.verdict is not Verdict.UNKNOWN:  # certainly not sent: the counters get their count back
                self._give_back(taken)
                log.error("proof_email_failed", job_id=job_id, error=exc.detail)
                raise HttpError(503, "email_unavailable", "We could not send the code email just now. "
                                                          "Please try again in a few minutes.") from None
            # It may have gone (SES took the request, then the answer was lost): the person may
            # hold a code, so the job is created as if sent; sending again could mail them twice.
            log.warning("proof_email_unknown", job_id=job_id, error=exc.detail)
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
        # Every try is counted before the code is looked at (an atomic ADD), so parallel guesses
        # cannot slip past the count: a job's code is checked at most WRONG_CODES_PER_JOB times.
        tries = self.aws.increment(counter_key(key, per_job.limit, per_job.subject, now),
                                   counter_expiry(per_job.limit, now))
        if tries > WRONG_CODES_PER_JOB:
            raise HttpError(429, "code_locked", "Too many wrong codes were entered for this upload. "
                                                "Please start again to get a new code.")
        if not check_code(keys, ticket_payload(str(ticket)), str(code)):
            self.aws.increment(counter_key(key, per_address.limit, per_address.subject, now),
                               counter_expiry(per_address.limit, now))
            left = max(0, WRONG_CODES_PER_JOB - tries)
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

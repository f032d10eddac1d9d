"""The front door's request handling: one method per route, I/O through :class:`FrontDoorAws`.

Every refusal is an :class:`HttpError` raised before anything is written: a bad request gets
a clear 4xx (JSON for ``/api``, a page otherwise) and touches nothing. Logs name the route,
the status and the job id; never a query string (signatures), an address or an IP.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
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
from frontdoor.job_api import JobApi
from frontdoor.policy import CONTENT_TYPES, MAX_PHOTO_BYTES, MAX_PHOTOS, MIN_PHOTOS
from frontdoor.routes import route
from frontdoor.views import gallery_items, gallery_tiles, status_view
from processor.errors import InvalidJobId
from processor.job.feedback import Click, Rating, RunSettings, click_key, rating_key
from processor.job.state import JobState, JobStatus
from processor.links import (
    FILE_NAME,
    LinkCheck,
    LinkSigner,
    check,
    check_job_token,
    download_parts,
    gallery_parts,
)
from processor.manifest import validate_job_id
from processor.settings import Settings

log = structlog.get_logger("frontdoor")

STATIC_TYPES = {".js": "application/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class FrontDoor(JobApi):
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

    # --- the job's status ------------------------------------------------------------
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
        names = self.aws.photo_names(job_id) if status is not None and status.state is JobState.REJECTED else None
        view = status_view(job_id, status, names)
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
        tiles = gallery_tiles([{**item, "url": signer.download_url(job_id, item["file"], expires)}
                               for item in gallery_items(results)])
        summary = results.get("summary") or {}
        stars = request.query.get("stars", "")
        page = pages.render(
            "gallery.html", base=self.base_path, job_id=job_id, tiles=tiles, expires_at=expires,
            crops=any(len(tile["crops"]) > 1 for tile in tiles),
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

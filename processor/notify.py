"""The last stage: one email per job (ready, rejected or failed), built from the job's results.

Why separate from :mod:`processor.email`: that module renders and sends any email; this one
knows what a job's email must say (which links, which photos to replace, the selection mode)
and keeps the one-email promise through the send-once marker ``jobs/<job>/email-sent``
(:class:`EmailMarker`), which lives here, beside the only code that sends a job's email.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from email.message import EmailMessage
from enum import StrEnum
from typing import Any

import structlog

from processor import clock
from processor.aws.secrets import link_keys, link_signing_key
from processor.aws.storage import ObjectStore
from processor.email import (
    BadManifestContext,
    FailedContext,
    InlineImage,
    Link,
    NoLikenessContext,
    ReadyContext,
    RejectedContext,
    RejectedPhoto,
    advice_for,
    build_message,
    render_email,
)
from processor.errors import (
    LostOwnership,
    NotFound,
    PreconditionFailed,
    SettingsError,
)
from processor.job.fence import Fence
from processor.job.state import EmailState
from processor.job.validation import ValidationSummary
from processor.links import LinkSigner, check_address_proof
from processor.manifest import Manifest, job_prefix
from processor.send_rule import SendFailed, Verdict
from processor.senders import EmailSender, make_sender
from processor.settings import Settings
from processor.stages import REASON_LABELS, email_preview

log = structlog.get_logger(__name__)

Hit = Callable[[str], None]


def _no_hit(point: str) -> None:
    return None


def selection_note(summary: dict[str, Any], settings: Settings) -> str | None:
    """What the email and status say about selection, when it is anything but the full promise."""
    notes = []
    mode = summary.get("mode", settings.selection_mode)
    if mode == "report":
        notes.append("identity selection ran in report mode: every generated image is included "
                     "with its identity score recorded in results.json, none was filtered out "
                     "(this model is not one whose faces can pass the check)")
    shortfall = int(summary.get("shortfall") or 0)
    if shortfall:
        notes.append(f"{summary.get('delivered')} of {summary.get('requested')} headshots passed "
                     f"the likeness check; we delivered those rather than weaker ones")
    if not notes:
        return None
    text = "; ".join(notes)
    return text[0].upper() + text[1:] + "."


@dataclass(frozen=True)
class ReadyLinks:
    """What the ready email points at: signed front-door links, all valid until ``expires_at``,
    and the inline preview (None when the contact sheet could not be read)."""

    headshots: list[Link]
    contact_sheet_url: str
    zip_url: str
    gallery_url: str
    rating_urls: list[Link]
    expires_at: int
    preview_jpeg: bytes | None = None
    formats: tuple[str, ...] = ("square",)  # what was delivered (results.json's summary)


def link_expiry(settings: Settings, delivered: dict[str, Any], now: float | None = None) -> int:
    """When the email's links stop: ``link_ttl_s`` after the results were published.

    Counting from publication, not from sending, is what keeps the promise: every result object
    is at least that old, so the results/ lifecycle (the same number of days, rounded up to
    midnight by S3) cannot delete a file while its link still works.
    """
    published = delivered.get("published_at") or (clock.now() if now is None else now)
    return int(published) + settings.link_ttl_s


async def ready_preview(store: ObjectStore, settings: Settings, delivered: dict[str, Any]) -> bytes | None:
    """The email's preview image, cut from the published contact sheet; None if that fails
    (the email is still whole without it, so a preview never fails a delivered job)."""
    if not delivered.get("contact_sheet"):
        return None
    try:
        sheet = await store.get_bytes(settings.output_bucket, delivered["prefix"] + delivered["contact_sheet"])
        return await asyncio.to_thread(email_preview, sheet.body, len(delivered["headshots"]))
    except Exception as exc:  # noqa: BLE001 - any failure here costs the picture, not the email
        log.warning("email_preview_failed", error=exc)
        return None


async def ready_links(store: ObjectStore, settings: Settings, delivered: dict[str, Any],
                      now: float | None = None) -> ReadyLinks:
    """Front-door links (HMAC-signed, see :mod:`processor.links`) for everything delivered.

    The worker signs with the key from Secrets Manager; no credential of the worker is in a
    link, so the link lives exactly until its ``exp`` whatever happens to the worker.
    """
    if not settings.frontdoor_url:
        raise SettingsError("HEADSHOTS_FRONTDOOR_URL is not set: the ready email has nowhere to link to")
    signer = LinkSigner(await link_signing_key(settings), settings.frontdoor_url)
    job_id = delivered["prefix"].removeprefix("results/").rstrip("/")
    expires = link_expiry(settings, delivered, now)

    def url(name: str | None) -> str:
        return signer.download_url(job_id, name, expires) if name else ""
    return ReadyLinks(
        headshots=[Link(label=name, url=url(name)) for name in delivered["headshots"]],
        contact_sheet_url=url(delivered.get("contact_sheet")), zip_url=url(delivered.get("archive")),
        gallery_url=signer.gallery_url(job_id, expires),
        rating_urls=[Link(label=f"{n} star{'s' if n != 1 else ''}", url=signer.rating_url(job_id, expires, n))
                     for n in range(1, 6)],
        expires_at=expires, preview_jpeg=await ready_preview(store, settings, delivered),
        formats=tuple((delivered.get("summary") or {}).get("formats") or ("square",)))


async def address_proven(settings: Settings, job_id: str, address: str, proof: str | None) -> bool:
    """Whether the job's manifest proves its address: the front door wrote ``proof`` once the
    address's owner entered the code it emailed (or the operator's ``headshots submit`` signed
    it). Checked with the current link key and the previous one (a rotation in between).
    Without it the job's email is withheld: nobody asked for it at that address."""
    if not proof:
        return False
    return check_address_proof((await link_keys(settings)).verifying(), job_id, address, proof)


class MarkerState(StrEnum):
    SENDING = "sending"  # claimed; the send may be under way (or its worker died mid-way)
    SENT = "sent"        # the provider took the message
    FAILED = "failed"    # the send failed before the message went out: another try may send
    UNKNOWN = "unknown"  # nobody can tell whether it went out: never resent, alarmed instead


@dataclass(frozen=True)
class MarkerRecord:
    kind: str
    token: str
    epoch: int
    state: MarkerState
    message_id: str | None = None

    def to_json(self) -> bytes:
        return json.dumps({"kind": self.kind, "token": self.token, "epoch": self.epoch,
                           "state": self.state.value, "message_id": self.message_id}).encode()

    @classmethod
    def from_json(cls, body: bytes) -> MarkerRecord:
        try:
            d = json.loads(body)
            return cls(str(d["kind"]), str(d["token"]), int(d.get("epoch", 0)),
                       MarkerState(d.get("state", MarkerState.SENT)), d.get("message_id"))
        except (ValueError, KeyError, TypeError):
            return cls("?", "?", 0, MarkerState.UNKNOWN)  # unreadable: never resend on it


class EmailMarker:
    """``jobs/<job>/email-sent``: the job's one email, claimed before it is sent.

    Semantics (docs/delivery.md): the marker is created with If-None-Match, holding a unique
    token, the lease epoch and state ``sending``; after the send it says ``sent``, or
    ``failed`` when the send certainly did not go out (the next attempt may take it over), or
    ``unknown`` when nobody can tell. A marker left in ``sending`` by an attempt that died is
    read as ``unknown``: the email may or may not have gone, and a second one must never be
    risked. A retried PUT that did land the first time is recognised by its token. Every write
    after the claim is conditional on the ETag the claim wrote (If-Match), and every write is
    fenced: a stale attempt can neither take the marker nor overwrite what the current one wrote.
    """

    def __init__(self, store: ObjectStore, bucket: str, job_id: str) -> None:
        self.store = store
        self.bucket = bucket
        self.job_id = job_id
        self.key = job_prefix(job_id) + "email-sent"

    async def read(self) -> tuple[MarkerRecord, str] | None:
        try:
            obj = await self.store.get_bytes(self.bucket, self.key)
        except NotFound:
            return None
        return MarkerRecord.from_json(obj.body), obj.etag

    async def claim(self, kind: str, token: str | None = None, epoch: int = 0,
                    guard: Fence | None = None) -> str | None:
        """Take the marker (absent, or left ``failed``); its ETag means this caller may send, None not."""
        token = token or uuid.uuid4().hex
        mine = MarkerRecord(kind, token, epoch, MarkerState.SENDING)
        for _ in range(5):
            try:
                return await self.store.put_bytes(self.bucket, self.key, mine.to_json(),
                                                  content_type="application/json", if_none_match=True,
                                                  guard=guard, epoch=epoch)
            except PreconditionFailed:
                found = await self.read()
                if found is None:
                    continue
                record, etag = found
                if record.token == token:
                    return etag
                if record.state is not MarkerState.FAILED:
                    return None
                try:
                    return await self.store.put_bytes(self.bucket, self.key, mine.to_json(),
                                                      content_type="application/json", if_match=etag,
                                                      guard=guard, epoch=epoch)
                except PreconditionFailed:
                    continue
        return None

    async def set(self, record: MarkerRecord, state: MarkerState, message_id: str | None = None, *,
                  etag: str, guard: Fence | None = None) -> str:
        """Record the outcome over the marker as it was read or claimed (``etag``), never another's.

        The write carries its writer's lease epoch (the ``guard``'s), not the claim's: a later
        attempt recording ``unknown`` over a dead attempt's ``sending`` writes under its own lease."""
        return await self.store.put_bytes(self.bucket, self.key,
                                          replace(record, state=state, message_id=message_id).to_json(),
                                          content_type="application/json", if_match=etag, guard=guard,
                                          epoch=guard.epoch if guard is not None else record.epoch)

    async def exists(self) -> bool:
        return await self.store.exists(self.bucket, self.key)


EmailOutcome = EmailState


async def send_once(marker: EmailMarker, sender: EmailSender, message: EmailMessage, kind: str,
                    fence: Fence | None = None, hit: Hit = _no_hit) -> EmailOutcome:
    """Send ``message`` unless this job's email went out (or may have) already.

    Returns ``sent`` (now or earlier) or ``unknown`` (logged as ``email_unknown``, which raises
    an alarm). A send that certainly failed (:mod:`processor.send_rule`) marks the marker
    ``failed`` and raises :class:`SendFailed`, so a later try can still notify.
    """
    job_id = marker.job_id
    if fence is not None:
        fence.ensure()
    token = uuid.uuid4().hex
    epoch = fence.epoch if fence is not None else 0
    etag = await marker.claim(kind, token, epoch, guard=fence)
    if etag is None:
        return await earlier_outcome(marker, kind, fence)
    mine = MarkerRecord(kind, token, epoch, MarkerState.SENDING)
    hit("notify.marked")
    started = time.monotonic()
    try:
        if fence is not None:
            fence.ensure()
        message_id = await sender.send(message)
    except SendFailed as exc:
        if exc.verdict is Verdict.UNKNOWN:
            log.error("email_unknown", job_id=job_id, kind=kind, backend=sender.backend, error=exc.detail)
            await _best_effort(marker.set(mine, MarkerState.UNKNOWN, etag=etag, guard=fence), job_id)
            return EmailState.UNKNOWN
        log.warning("email_send_failed", job_id=job_id, kind=kind, backend=sender.backend,
                    verdict=exc.verdict.value, error=exc.detail)
        await _best_effort(marker.set(mine, MarkerState.FAILED, etag=etag, guard=fence), job_id)
        raise
    except LostOwnership:
        raise  # checked before the send: nothing went out; the marker says "sending" (unknown to others)
    except Exception as exc:  # a sender bug: nobody can say how far it got
        log.error("email_unknown", job_id=job_id, kind=kind, backend=sender.backend, error=type(exc).__name__,
                  exc_info=exc)
        await _best_effort(marker.set(mine, MarkerState.UNKNOWN, etag=etag, guard=fence), job_id)
        return EmailState.UNKNOWN
    await _best_effort(marker.set(mine, MarkerState.SENT, message_id, etag=etag, guard=fence), job_id)
    log.info("email_sent", job_id=job_id, kind=kind, backend=sender.backend, message_id=message_id,
             seconds=round(time.monotonic() - started, 3))
    return EmailState.SENT


async def send_patiently(send: Callable[[], Awaitable[EmailOutcome]], job_id: str, window_s: float,
                         first_delay_s: float = 5.0, max_delay_s: float = 60.0) -> EmailOutcome:
    """``send()`` (a :func:`send_once`), tried again while it certainly fails for now (no
    connection, throttled, 4xx: the ``RETRY`` verdict), for up to ``window_s``.

    Why: an email that must not be skipped (the last word on a failed job) should outlast a
    provider's bad minute; the send-once marker keeps every try to one email. A permanent
    refusal, or the window's end, raises :class:`SendFailed`: the caller records ``failed``
    (``email_missing``)."""
    deadline = time.monotonic() + window_s
    delay = first_delay_s
    while True:
        try:
            return await send()
        except SendFailed as exc:
            if exc.verdict is not Verdict.RETRY or time.monotonic() + delay > deadline:
                raise  # refused for good, or out of time
            log.warning("email_retry_scheduled", job_id=job_id, delay_s=delay)
            await asyncio.sleep(delay)
            delay = min(2 * delay, max_delay_s)


async def earlier_outcome(marker: EmailMarker, kind: str, fence: Fence | None = None) -> EmailOutcome:
    """What an earlier attempt's marker says about the job's email (a ``sending`` one is judged
    ``unknown`` here, logged ``email_unknown`` and recorded so)."""
    found = await marker.read()
    record = found[0] if found else None
    if record is not None and record.state is MarkerState.SENT:
        log.info("email_already_sent", job_id=marker.job_id, kind=record.kind)
        return EmailState.SENT
    if found is not None and record is not None and record.state is MarkerState.SENDING:
        # Its attempt died between claiming and recording the outcome: it may have sent.
        log.error("email_unknown", job_id=marker.job_id, kind=record.kind, reason="sender died mid-send")
        await _best_effort(marker.set(record, MarkerState.UNKNOWN, etag=found[1], guard=fence), marker.job_id)
        return EmailState.UNKNOWN
    log.info("email_outcome_unknown_earlier", job_id=marker.job_id, kind=kind)
    return EmailState.UNKNOWN


async def _best_effort(write: Any, job_id: str) -> None:
    try:
        await write
    except Exception as exc:
        log.warning("email_marker_write_failed", job_id=job_id, error=type(exc).__name__)


class Notifier:
    """Builds and sends the job's one email through the send-once marker."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        self.sender = make_sender(settings)

    def marker(self, job_id: str) -> EmailMarker:
        return EmailMarker(self.store, self.settings.output_bucket, job_id)

    async def _send(self, job_id: str, kind: str, to: str, name: str | None, ctx: Any, fence: Fence,
                    hit: Hit, patience_s: float = 0.0) -> EmailOutcome:
        message = build_message(render_email(kind, ctx), self.settings.email_sender, to,
                                job_id=job_id, recipient_name=name)
        hit("notify.start")

        def once() -> Awaitable[EmailOutcome]:
            return send_once(self.marker(job_id), self.sender, message, kind, fence, hit)
        outcome = await send_patiently(once, job_id, patience_s) if patience_s > 0 else await once()
        hit("notify.sent")
        return outcome

    async def ready(self, job_id: str, manifest: Manifest, links: ReadyLinks, fence: Fence,
                    note: str | None, hit: Hit = _no_hit) -> EmailOutcome:
        preview = None
        if links.preview_jpeg:
            preview = InlineImage(cid=f"preview.{uuid.uuid4().hex}@headshots", data=links.preview_jpeg)
        ctx = ReadyContext(job_id=job_id, name=manifest.name, headshot_count=len(links.headshots),
                           gallery_url=links.gallery_url, contact_sheet_url=links.contact_sheet_url,
                           zip_url=links.zip_url, rating_urls=links.rating_urls,
                           link_ttl_s=self.settings.link_ttl_s, expires_at=links.expires_at,
                           preview=preview, selection_note=note, portraits="portrait" in links.formats)
        return await self._send(job_id, "ready", str(manifest.email), manifest.name, ctx, fence, hit)

    async def rejected(self, job_id: str, manifest: Manifest, summary: ValidationSummary, fence: Fence,
                       hit: Hit = _no_hit, patience_s: float = 0.0) -> EmailOutcome:
        bad = [RejectedPhoto(name=p.file, reason=REASON_LABELS.get(p.reason or "", "Not usable."),
                             advice=p.message or advice_for(p.reason), code=p.reason)
               for p in summary.photos if not p.ok]
        ctx = RejectedContext(job_id=job_id, name=manifest.name, bad_photos=bad, usable=summary.usable,
                              required=summary.required, problem=summary.problem)
        return await self._send(job_id, "rejected", str(manifest.email), manifest.name, ctx, fence, hit, patience_s)

    async def no_likeness(self, job_id: str, to: str, name: str | None, generated: int, photos_used: int,
                          fence: Fence, hit: Hit = _no_hit, patience_s: float = 0.0) -> EmailOutcome:
        """Photos accepted, training done, but no generated image looked enough like the person."""
        ctx = NoLikenessContext(job_id=job_id, name=name, generated=max(1, generated), photos_used=photos_used)
        return await self._send(job_id, "no_likeness", to, name, ctx, fence, hit, patience_s)

    async def bad_manifest(self, job_id: str, to: str, problems: Sequence[str], fence: Fence,
                           hit: Hit = _no_hit, patience_s: float = 0.0) -> EmailOutcome:
        """The upload's manifest.json was wrong: what to fix (the person's to fix, not ours)."""
        ctx = BadManifestContext(job_id=job_id, problems=list(problems))
        return await self._send(job_id, "bad_manifest", to, None, ctx, fence, hit, patience_s)

    async def failed(self, job_id: str, to: str, name: str | None, reason: str, attempts: int,
                     fence: Fence, hit: Hit = _no_hit, patience_s: float = 0.0) -> EmailOutcome:
        ctx = FailedContext(job_id=job_id, name=name, reason=reason, attempts=max(1, attempts))
        return await self._send(job_id, "failed", to, name, ctx, fence, hit, patience_s)

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
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import structlog

from processor.aws.secrets import link_signing_key
from processor.aws.storage import ObjectStore
from processor.email import (
    EmailSender,
    FailedContext,
    InlineImage,
    Link,
    ReadyContext,
    RejectedContext,
    RejectedPhoto,
    advice_for,
    build_message,
    make_sender,
    render_email,
)
from processor.errors import PreconditionFailed, SettingsError
from processor.job.fence import Fence
from processor.job.validation import ValidationSummary
from processor.links import LinkSigner
from processor.manifest import Manifest, job_prefix
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


def link_expiry(settings: Settings, delivered: dict[str, Any], now: float | None = None) -> int:
    """When the email's links stop: ``link_ttl_s`` after the results were published.

    Counting from publication, not from sending, is what keeps the promise: every result object
    is at least that old, so the results/ lifecycle (the same number of days, rounded up to
    midnight by S3) cannot delete a file while its link still works.
    """
    published = delivered.get("published_at") or (time.time() if now is None else now)
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
        expires_at=expires, preview_jpeg=await ready_preview(store, settings, delivered))


class EmailMarker:
    """``jobs/<job>/email-sent``: written (If-None-Match) before a job's email is sent.

    It holds a unique token, so a retried PUT that did land the first time is recognised as
    ours instead of suppressing the only email.
    """

    def __init__(self, store: ObjectStore, bucket: str, job_id: str) -> None:
        self.store = store
        self.bucket = bucket
        self.job_id = job_id
        self.key = job_prefix(job_id) + "email-sent"

    async def claim(self, kind: str, token: str | None = None) -> bool:
        """Write the marker if absent; True means this caller may send."""
        token = token or uuid.uuid4().hex
        body = json.dumps({"kind": kind, "token": token}).encode()
        try:
            await self.store.put_bytes(self.bucket, self.key, body, content_type="application/json",
                                       if_none_match=True)
            return True
        except PreconditionFailed:
            existing = await self.store.get_bytes(self.bucket, self.key)
            try:
                return json.loads(existing.body).get("token") == token
            except ValueError:
                return False

    async def exists(self) -> bool:
        return await self.store.exists(self.bucket, self.key)

    async def remove(self) -> None:
        await self.store.delete(self.bucket, self.key)


async def send_once(marker: EmailMarker, sender: EmailSender, message: EmailMessage, kind: str,
                    fence: Fence | None = None) -> bool:
    """Send ``message`` unless this job's email went out already; True when sent now.

    The marker is written before sending. If the send then fails, the marker is removed so a
    later attempt can still notify; a crash between marker and send loses that email rather
    than ever sending two.
    """
    job_id = marker.job_id
    if fence is not None:
        await fence.check()
    if not await marker.claim(kind):
        log.info("email_already_sent", job_id=job_id, kind=kind)
        return False
    started = time.monotonic()
    try:
        message_id = await sender.send(message)
    except Exception:
        await marker.remove()
        log.exception("email_send_failed", job_id=job_id, kind=kind, backend=sender.backend)
        raise
    log.info("email_sent", job_id=job_id, kind=kind, backend=sender.backend, message_id=message_id,
             seconds=round(time.monotonic() - started, 3))
    return True


class Notifier:
    """Builds and sends the job's one email through the send-once marker."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        self.sender = make_sender(settings)

    def marker(self, job_id: str) -> EmailMarker:
        return EmailMarker(self.store, self.settings.output_bucket, job_id)

    async def _send(self, job_id: str, kind: str, to: str, name: str | None, ctx: Any, fence: Fence,
                    hit: Hit) -> bool:
        message = build_message(render_email(kind, ctx), self.settings.email_sender, to,
                                job_id=job_id, recipient_name=name)
        hit("notify.start")
        sent = await send_once(self.marker(job_id), self.sender, message, kind, fence)
        hit("notify.sent")
        return sent

    async def ready(self, job_id: str, manifest: Manifest, links: ReadyLinks, fence: Fence,
                    note: str | None, hit: Hit = _no_hit) -> bool:
        preview = None
        if links.preview_jpeg:
            preview = InlineImage(cid=f"preview.{uuid.uuid4().hex}@headshots", data=links.preview_jpeg)
        ctx = ReadyContext(job_id=job_id, name=manifest.name, headshot_count=len(links.headshots),
                           gallery_url=links.gallery_url, contact_sheet_url=links.contact_sheet_url,
                           zip_url=links.zip_url, rating_urls=links.rating_urls,
                           link_ttl_s=self.settings.link_ttl_s, expires_at=links.expires_at,
                           preview=preview, selection_note=note)
        return await self._send(job_id, "ready", str(manifest.email), manifest.name, ctx, fence, hit)

    async def rejected(self, job_id: str, manifest: Manifest, summary: ValidationSummary, fence: Fence,
                       hit: Hit = _no_hit) -> bool:
        bad = [RejectedPhoto(name=p.file, reason=REASON_LABELS.get(p.reason or "", "Not usable."),
                             advice=p.message or advice_for(p.reason))
               for p in summary.photos if not p.ok]
        ctx = RejectedContext(job_id=job_id, name=manifest.name, bad_photos=bad, usable=summary.usable,
                              required=summary.required, problem=summary.problem)
        return await self._send(job_id, "rejected", str(manifest.email), manifest.name, ctx, fence, hit)

    async def failed(self, job_id: str, to: str, name: str | None, reason: str, attempts: int,
                     fence: Fence, hit: Hit = _no_hit) -> bool:
        ctx = FailedContext(job_id=job_id, name=name, reason=reason, attempts=max(1, attempts))
        return await self._send(job_id, "failed", to, name, ctx, fence, hit)

"""The last stage: one email per job (ready, rejected or failed), built from the job's results.

Why separate from :mod:`processor.email`: that module renders and sends any email; this one
knows what a job's email must say (which links, which photos to replace, the selection mode)
and keeps the one-email promise through the send-once marker ``jobs/<job>/email-sent``
(:class:`EmailMarker`), which lives here, beside the only code that sends a job's email.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import structlog

from processor.aws.storage import ObjectStore
from processor.email import (
    EmailSender,
    FailedContext,
    Link,
    ReadyContext,
    RejectedContext,
    RejectedPhoto,
    advice_for,
    build_message,
    make_sender,
    render_email,
)
from processor.errors import PreconditionFailed
from processor.job.fence import Fence
from processor.job.validation import ValidationSummary
from processor.manifest import Manifest, job_prefix
from processor.settings import Settings
from processor.stages import REASON_LABELS

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
    """The link part of a ready email: presigned GETs, valid for ``link_ttl_s``."""

    headshots: list[Link]
    contact_sheet_url: str
    zip_url: str


async def ready_links(store: ObjectStore, settings: Settings, delivered: dict[str, Any]) -> ReadyLinks:
    """Presigned GET links for every delivered headshot, the contact sheet and the zip."""
    prefix = delivered["prefix"]
    ttl = settings.link_ttl_s

    async def url(name: str) -> str:
        return await store.presign_get(settings.output_bucket, prefix + name, ttl)
    headshots = [Link(label=name, url=await url(name)) for name in delivered["headshots"]]
    sheet = await url(delivered["contact_sheet"]) if delivered.get("contact_sheet") else ""
    archive = await url(delivered["archive"]) if delivered.get("archive") else ""
    return ReadyLinks(headshots=headshots, contact_sheet_url=sheet, zip_url=archive)


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
        ctx = ReadyContext(job_id=job_id, name=manifest.name, headshots=links.headshots,
                           contact_sheet_url=links.contact_sheet_url, zip_url=links.zip_url,
                           link_ttl_s=self.settings.link_ttl_s, selection_note=note)
        return await self._send(job_id, "ready", str(manifest.email), manifest.name, ctx, fence, hit)

    async def rejected(self, job_id: str, manifest: Manifest, summary: ValidationSummary, fence: Fence,
                       hit: Hit = _no_hit) -> bool:
        bad = [RejectedPhoto(name=p.file, reason=REASON_LABELS.get(p.reason or "", "Not usable."),
                             advice=p.message or advice_for(p.reason), code=p.reason)
               for p in summary.photos if not p.ok]
        ctx = RejectedContext(job_id=job_id, name=manifest.name, bad_photos=bad, usable=summary.usable,
                              required=summary.required, problem=summary.problem)
        return await self._send(job_id, "rejected", str(manifest.email), manifest.name, ctx, fence, hit)

    async def failed(self, job_id: str, to: str, name: str | None, reason: str, attempts: int,
                     fence: Fence, hit: Hit = _no_hit) -> bool:
        ctx = FailedContext(job_id=job_id, name=name, reason=reason, attempts=max(1, attempts))
        return await self._send(job_id, "failed", to, name, ctx, fence, hit)

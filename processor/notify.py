"""The last stage: one email per job (ready, rejected or failed), built from the job's results.

Why separate from :mod:`processor.email`: that module renders and sends any email; this one
knows what a job's email must say (which links, which photos to replace, the selection mode)
and guarantees the one-email promise through the send-once marker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from handlers.validate_messages import LABELS as REASON_LABELS
from processor.email import (
    FailedContext,
    Link,
    ReadyContext,
    RejectedContext,
    RejectedPhoto,
    advice_for,
    build_message,
    make_sender,
    render_email,
    send_once,
)
from processor.job_store import JobStore
from processor.manifest import Manifest
from processor.settings import Settings
from processor.storage import ObjectStore
from processor.validation import ValidationSummary

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


class Notifier:
    """Builds and sends the job's one email through the send-once marker."""

    def __init__(self, settings: Settings, store: ObjectStore, jobs: JobStore) -> None:
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.sender = make_sender(settings)

    async def _send(self, job_id: str, kind: str, to: str, name: str | None, ctx: Any, hit: Hit) -> bool:
        message = build_message(render_email(kind, ctx), self.settings.email_sender, to,
                                job_id=job_id, recipient_name=name)
        hit("notify.start")
        sent = await send_once(self.jobs, job_id, self.sender, message, kind)
        hit("notify.sent")
        return sent

    async def ready(self, job_id: str, manifest: Manifest, links: ReadyLinks,
                    note: str | None, hit: Hit = _no_hit) -> bool:
        ctx = ReadyContext(job_id=job_id, name=manifest.name, headshots=links.headshots,
                           contact_sheet_url=links.contact_sheet_url, zip_url=links.zip_url,
                           link_ttl_s=self.settings.link_ttl_s, selection_note=note)
        return await self._send(job_id, "ready", str(manifest.email), manifest.name, ctx, hit)

    async def rejected(self, job_id: str, manifest: Manifest, summary: ValidationSummary,
                       hit: Hit = _no_hit) -> bool:
        bad = [RejectedPhoto(name=p.file, reason=REASON_LABELS.get(p.reason or "", "Not usable."),
                             advice=p.message or advice_for(p.reason))
               for p in summary.photos if not p.ok]
        ctx = RejectedContext(job_id=job_id, name=manifest.name, bad_photos=bad, usable=summary.usable,
                              required=summary.required, problem=summary.problem)
        return await self._send(job_id, "rejected", str(manifest.email), manifest.name, ctx, hit)

    async def failed(self, job_id: str, to: str, name: str | None, reason: str, attempts: int,
                     hit: Hit = _no_hit) -> bool:
        ctx = FailedContext(job_id=job_id, name=name, reason=reason, attempts=max(1, attempts))
        return await self._send(job_id, "failed", to, name, ctx, hit)

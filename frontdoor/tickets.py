"""The start ticket: what ``POST /api/jobs`` promised, signed, handed back by ``.../start``.

Why a ticket and not a table: between creating a job and starting it nothing needs to be
stored. The ticket holds the manifest the front door will write (address, name, photo
names) and its expiry, under the link key's HMAC, so the browser can carry it but cannot
change it: the address that was rate-limited is the address the job emails.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from frontdoor.http import HttpError
from processor.links import sign, verify


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_ticket(key: bytes, job_id: str, manifest: dict[str, Any], expires_at: int) -> str:
    payload = _b64(json.dumps({"job": job_id, "exp": expires_at, "manifest": manifest},
                              separators=(",", ":")).encode())
    return f"{payload}.{sign(key, 'ticket', payload)}"


def open_ticket(keys: Sequence[bytes], ticket: Any, job_id: str, now: float) -> dict[str, Any]:
    """The manifest a genuine, unexpired ticket for ``job_id`` carries; 403/410 otherwise."""
    if not isinstance(ticket, str) or ticket.count(".") != 1 or len(ticket) > 16384:
        raise HttpError(403, "bad_ticket", "This upload cannot be started (its ticket is not valid).")
    payload, signature = ticket.split(".")
    if not verify(keys, signature, "ticket", payload):
        raise HttpError(403, "bad_ticket", "This upload cannot be started (its ticket is not valid).")
    doc = json.loads(_unb64(payload))
    if doc.get("job") != job_id:
        raise HttpError(403, "bad_ticket", "This ticket belongs to another upload.")
    if now >= int(doc["exp"]):
        raise HttpError(410, "ticket_expired", "This upload took too long and has expired; please start again.")
    return dict(doc["manifest"])

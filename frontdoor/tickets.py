"""Tickets: what the front door promised a browser, signed, handed back on the next step.

Why tickets and not a table: between the steps of a job's creation nothing needs to be
stored. A ticket holds its kind, its job, its expiry and a body (the manifest the front door
will write) under the link key's HMAC, so the browser can carry it but cannot change it.

- a ``proof`` ticket (``POST /api/jobs``) carries the manifest to be; the code emailed to
  its address is derived from it (:mod:`frontdoor.proof`), so the code is bound to the job,
  the address and the ticket's expiry;
- an ``upload`` ticket (``.../verify`` with the right code) carries the manifest with its
  address proof; only it can start the job.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, Literal

from frontdoor.http import HttpError
from processor.links import sign, verify

Kind = Literal["proof", "upload"]
MAX_TICKET_CHARS = 16384


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_ticket(key: bytes, kind: Kind, job_id: str, body: dict[str, Any], expires_at: int) -> str:
    payload = _b64(json.dumps({"kind": kind, "job": job_id, "exp": expires_at, "body": body},
                              separators=(",", ":")).encode())
    return f"{payload}.{sign(key, 'ticket', kind, payload)}"


def ticket_payload(ticket: str) -> str:
    """The signed part of a ticket (what a proof code is derived from)."""
    return ticket.split(".", 1)[0]


def open_ticket(keys: Sequence[bytes], kind: Kind, ticket: Any, job_id: str, now: float) -> dict[str, Any]:
    """The body of a genuine, unexpired ``kind`` ticket for ``job_id``; 403/410 otherwise."""
    bad = HttpError(403, "bad_ticket", "This upload cannot go on (its ticket is not valid). Please start again.")
    if not isinstance(ticket, str) or ticket.count(".") != 1 or len(ticket) > MAX_TICKET_CHARS:
        raise bad
    payload, signature = ticket.split(".")
    if not verify(keys, signature, "ticket", kind, payload):
        raise bad
    doc = json.loads(_unb64(payload))
    if doc.get("job") != job_id or doc.get("kind") != kind:
        raise HttpError(403, "bad_ticket", "This ticket belongs to another upload.")
    if now >= int(doc["exp"]):
        raise HttpError(410, "ticket_expired", "This upload took too long and has expired; please start again.")
    return dict(doc["body"])

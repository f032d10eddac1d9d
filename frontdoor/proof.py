"""Proving an address before anything is sent to it: the code and its one fixed-text email.

``POST /api/jobs`` emails a 6-digit code; only ``.../verify`` with that code hands out upload
policies and the ticket that can start the job, and the manifest the front door then writes
carries an address proof the worker checks before any email (:func:`processor.links.address_proof`).

Why a code and not a link: mail scanners follow every link in an email, so a link would
prove nothing. The code is an HMAC of the signed proof ticket (job, address, name, photos,
expiry) under the link key, so nothing is stored, and it is bound to the job, the address
and the ticket's expiry. The email carries only the service's own words, the code and a
random job reference: no name, no file name, nothing a stranger typed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

CODE_DIGITS = 6
_CODE = re.compile(rf"[0-9]{{{CODE_DIGITS}}}")
#: The header that says which job a code email is for (not X-Headshots-Job: it is not the job's email).
PROOF_HEADER = "X-Headshots-Proof"


def proof_code(key: bytes, ticket_payload: str) -> str:
    """The code of one proof ticket (see the module docstring)."""
    digest = hmac.new(key, f"code\n{ticket_payload}".encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 10**CODE_DIGITS:0{CODE_DIGITS}d}"


def well_formed(code: object) -> bool:
    return isinstance(code, str) and _CODE.fullmatch(code) is not None


def check_code(keys: Sequence[bytes], ticket_payload: str, code: str) -> bool:
    """True when ``code`` is the ticket's code under one of ``keys`` (constant-time compare)."""
    return well_formed(code) and any(hmac.compare_digest(proof_code(key, ticket_payload), code)
                                     for key in keys if key)


def proof_message(sender: str, to: str, code: str, job_id: str, minutes: int) -> EmailMessage:
    """The code email: fixed text, the code, the job's random reference; nothing anyone typed."""
    msg = EmailMessage()
    msg["Subject"] = f"Your headshots code: {code}"
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg[PROOF_HEADER] = job_id
    msg.set_content(
        f"Your code is {code}\n\n"
        "Someone asked us to make professional headshots and to send them to this address. If that\n"
        f"was you, enter this code on the upload page within {minutes} minutes to confirm the address.\n\n"
        "If it was not you, ignore this email: without the code nothing is made, and we send\n"
        "nothing more to this address.\n\n"
        f"Reference: {job_id}\n")
    return msg

"""Signed links to the front door: what the worker writes into emails and the front door checks.

Why not presigned S3 URLs: one signed with the worker's credentials dies with the worker's
session (an ECS task role's credentials last hours), yet the email promises days. A link
here is an HMAC, under a key kept in Secrets Manager, over what the link grants and until
when; each click is checked by the front door, which then redirects to a fresh, short-lived
presigned URL signed with its own credentials. The worker's credentials play no part in a
link's life, and the lifetime is exactly the ``exp`` the email states.

Everything here is pure (keys and clocks are passed in), shared by the worker (which signs)
and the front door (which signs and verifies). Several keys may verify (the current one
first, which also signs): a rotated key keeps the links it signed working until they expire.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

#: Names a download link may carry: files directly under ``results/<job>/``, no paths.
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: An ``exp`` parameter: epoch seconds, digits only (no sign, no exponent, no overflow).
_EXP = re.compile(r"[0-9]{1,11}")
#: Length of a job's secret token: 22 base64url characters = 132 bits of the HMAC.
TOKEN_CHARS = 22
_VERSION = "v1"


#: How long a new link key waits before it signs anything. The front door and the worker each
#: cache the keys for five minutes; a key signs only once every cache has surely read it, so
#: nothing signed with it can reach a verifier that does not know it yet. Until then the
#: previous key signs (it verifies until the rotation after next, a whole period away).
KEY_SETTLE_S = 600


def settled_key(current: bytes, current_since: float, previous: bytes | None, now: float) -> bytes:
    """The key to sign with now: the current one once it has settled, else the previous one."""
    return previous if previous and now - current_since < KEY_SETTLE_S else current


class LinkCheck(enum.Enum):
    """What a link's signature and expiry say; the front door maps each to a page."""

    OK = "ok"
    BAD = "bad"          # tampered, forged, malformed: 403, touch nothing
    EXPIRED = "expired"  # genuine but past its exp: the friendly "expired" page (410)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign(key: bytes, *parts: str) -> str:
    """HMAC-SHA256 of ``parts`` (kind first), base64url without padding (43 characters)."""
    if not key:
        raise ValueError("an empty key signs nothing")
    message = "\n".join((_VERSION, *parts)).encode()
    return _b64(hmac.new(key, message, hashlib.sha256).digest())


def verify(keys: Sequence[bytes], signature: str, *parts: str, length: int | None = None) -> bool:
    """True when ``signature`` is ``sign(key, *parts)`` (cut to ``length``) for one of ``keys``."""
    if not isinstance(signature, str) or not signature.isascii():
        return False
    return any(hmac.compare_digest(sign(key, *parts)[:length], signature) for key in keys if key)


def parse_exp(value: str | None) -> int | None:
    """An ``exp`` query value as epoch seconds, or None when it is not plain digits."""
    if value is None or not _EXP.fullmatch(value):
        return None
    return int(value)


def check(keys: Sequence[bytes], signature: str | None, exp: str | None, now: float, *parts: str) -> LinkCheck:
    """Signature first (a forged link learns nothing, not even that it expired), then expiry."""
    when = parse_exp(exp)
    if signature is None or when is None or not verify(keys, signature, *parts, str(when)):
        return LinkCheck.BAD
    return LinkCheck.OK if now < when else LinkCheck.EXPIRED


# --- what each kind of link signs ---------------------------------------------------------
def download_parts(job_id: str, file: str) -> tuple[str, ...]:
    return ("download", job_id, file)


def gallery_parts(job_id: str) -> tuple[str, ...]:
    """The gallery link also authorises the rating form: one secret per delivered job."""
    return ("gallery", job_id)


def job_token(key: bytes, job_id: str, expires_at: int) -> str:
    """The secret token of a job's status page, handed to the uploader only: ``<exp>.<132 bits>``.

    It expires (``expires_at``): a status page is for the life of the job and its results, not
    for ever (the front door also refuses it once an ended job's results are gone).
    """
    return f"{int(expires_at)}.{sign(key, 'status', job_id, str(int(expires_at)))[:TOKEN_CHARS]}"


def check_job_token(keys: Sequence[bytes], job_id: str, token: str | None, now: float) -> LinkCheck:
    """Signature first (a forged token learns nothing), then its expiry."""
    if not isinstance(token, str) or token.count(".") != 1:
        return LinkCheck.BAD
    exp, sig = token.split(".")
    when = parse_exp(exp)
    if when is None or len(sig) != TOKEN_CHARS or not verify(keys, sig, "status", job_id, str(when),
                                                             length=TOKEN_CHARS):
        return LinkCheck.BAD
    return LinkCheck.OK if now < when else LinkCheck.EXPIRED


# --- the proof that a job's address is its owner's ------------------------------------------
def _address(email: str) -> str:
    return email.strip().lower()


def address_proof(key: bytes, job_id: str, email: str) -> str:
    """What the front door writes into a manifest once the address's owner entered the code it
    emailed (and what ``headshots submit`` writes as the operator's word): an HMAC over the job
    and the address, so the worker can tell a proven address from one anybody typed."""
    return sign(key, "address", job_id, _address(email))


def check_address_proof(keys: Sequence[bytes], job_id: str, email: str, proof: str | None) -> bool:
    """True only for a proof of exactly this job and this address, under one of ``keys``."""
    return proof is not None and verify(keys, proof, "address", job_id, _address(email))


@dataclass(frozen=True)
class LinkSigner:
    """Absolute front-door URLs for one job's email, signed with the current key."""

    key: bytes
    base_url: str  # the front door's public URL, e.g. https://abc.lambda-url.us-east-1.on.aws

    def _url(self, path: str, **query: str | int) -> str:
        return f"{self.base_url.rstrip('/')}{path}?{urlencode(query)}"

    def download_url(self, job_id: str, file: str, expires_at: int) -> str:
        if not FILE_NAME.fullmatch(file):
            raise ValueError(f"not a downloadable file name: {file!r}")
        sig = sign(self.key, *download_parts(job_id, file), str(expires_at))
        return self._url(f"/d/{quote(job_id)}/{quote(file)}", exp=expires_at, sig=sig)

    def gallery_url(self, job_id: str, expires_at: int) -> str:
        sig = sign(self.key, *gallery_parts(job_id), str(expires_at))
        return self._url(f"/g/{quote(job_id)}", exp=expires_at, sig=sig)

    def rating_url(self, job_id: str, expires_at: int, stars: int) -> str:
        """The gallery with its rating form open at ``stars``; nothing is stored until the
        person sends it (mail scanners follow links in emails: a GET must never be a vote)."""
        if not 1 <= stars <= 5:
            raise ValueError("stars must be 1-5")
        sig = sign(self.key, *gallery_parts(job_id), str(expires_at))
        return self._url(f"/g/{quote(job_id)}", exp=expires_at, sig=sig, stars=stars) + "#rate"

    def status_url(self, job_id: str, expires_at: int) -> str:
        """The status page; the token rides in the fragment, which browsers never send."""
        return f"{self.base_url.rstrip('/')}/s/{quote(job_id)}#{job_token(self.key, job_id, expires_at)}"

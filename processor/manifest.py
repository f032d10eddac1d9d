"""The job contract at the door: job ids, ``manifest.json`` and the S3 event in an SQS body.

Everything here is a pure function of values, so the worker can decide what a message means
before it touches S3. A job id becomes part of S3 keys and local paths, so it is checked
against one strict rule (:data:`JOB_ID_PATTERN`) before it is used for anything.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote_plus

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ValidationError,
    field_validator,
)

from processor.errors import InvalidJobId, MalformedMessage, ManifestError
from processor.settings import DeliveryFormat, checked_formats

#: Allowed job ids: the folder name under ``uploads/``. ``.`` and ``..`` are refused separately.
JOB_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")
UPLOADS_PREFIX = "uploads/"
MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 64 * 1024


#: Unicode categories refused in any manifest text: control characters (CR, LF, NUL, DEL, C1),
#: line and paragraph separators, and lone surrogates. A name becomes an email header and a
#: photo name a file name; neither may carry a line break or an unencodable character.
_CONTROL_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def has_control_characters(text: str) -> bool:
    """True when ``text`` holds a character no manifest field may contain (see above)."""
    return any(unicodedata.category(ch) in _CONTROL_CATEGORIES for ch in text)


def validate_job_id(job_id: str) -> str:
    """Return ``job_id`` unchanged, or raise :class:`InvalidJobId` saying why it is refused."""
    if not isinstance(job_id, str) or not JOB_ID_PATTERN.fullmatch(job_id):
        raise InvalidJobId("job id must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' or '-'")
    if job_id in (".", ".."):
        raise InvalidJobId("job id must not be '.' or '..'")
    return job_id


def job_id_from_key(key: str) -> str:
    """The job id of an ``uploads/<job>/manifest.json`` key, validated."""
    if not key.startswith(UPLOADS_PREFIX) or not key.endswith("/" + MANIFEST_NAME):
        raise InvalidJobId(f"not an {UPLOADS_PREFIX}<job>/{MANIFEST_NAME} key")
    return validate_job_id(key[len(UPLOADS_PREFIX):-len("/" + MANIFEST_NAME)])


def uploads_prefix(job_id: str) -> str:
    """``uploads/<job>/`` (input bucket) for a valid job id."""
    return f"{UPLOADS_PREFIX}{validate_job_id(job_id)}/"


def job_prefix(job_id: str) -> str:
    """``jobs/<job>/`` (output bucket: status.json, the email marker, work/) for a valid job id."""
    return f"jobs/{validate_job_id(job_id)}/"


def results_prefix(job_id: str) -> str:
    """``results/<job>/`` (output bucket: what the person downloads) for a valid job id."""
    return f"results/{validate_job_id(job_id)}/"


#: The manifest's ``subject`` values (handlers.subject.SUBJECT_CLASSES without the unset one).
SUBJECTS: tuple[str, ...] = ("man", "woman")


class Manifest(BaseModel):
    """``manifest.json``: who to email and, optionally, which uploaded files are the photos and
    which delivery formats the job wants (``formats``: ``["square", "portrait"]`` adds 4:5
    portrait crops; absent: squares only, as before the field existed)."""

    # No model-wide whitespace stripping: photo names are S3 keys and must match exactly
    # (" me.jpg" stripped would be looked up as "me.jpg" and called missing).
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    email: EmailStr
    name: str | None = Field(None, min_length=1, max_length=100)
    photos: list[str] | None = Field(None, min_length=1, max_length=200)
    #: The front door's word that the address's owner entered the code it emailed (an HMAC over
    #: job and address under the link key, :func:`processor.links.address_proof`). Without a
    #: valid one the worker runs the job but emails nobody (status ``email: withheld``).
    proof: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{43}$")
    formats: list[DeliveryFormat] | None = None
    #: The person's class: "man" or "woman"; absent or null: "person" (captions, the class
    #: prior, the prompts' attire; handlers/subject.py).
    subject: str | None = None

    @field_validator("email", "name", mode="before")
    @classmethod
    def _trimmed(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("version", mode="before")
    @classmethod
    def _the_number_one(cls, version: Any) -> Any:
        if type(version) is not int:  # JSON true, 1.0 or "1" are not version 1
            raise ValueError("must be the number 1")
        return version

    @field_validator("name")
    @classmethod
    def _printable_name(cls, name: str | None) -> str | None:
        if name is not None and has_control_characters(name):
            raise ValueError("must not contain line breaks, tabs or other control characters")
        return name

    @field_validator("subject")
    @classmethod
    def _known_subject(cls, subject: str | None) -> str | None:
        if subject is not None and subject not in SUBJECTS:
            raise ValueError('must be "man" or "woman" (leave it out for "person")')
        return subject

    @field_validator("formats")
    @classmethod
    def _known_formats_with_the_square(cls, formats: list[str] | None) -> list[str] | None:
        return None if formats is None else list(checked_formats(formats))

    @field_validator("photos")
    @classmethod
    def _plain_file_names(cls, photos: list[str] | None) -> list[str] | None:
        if photos is None:
            return None
        # A problem names the photo by its place in the list, never by its name: the reason lands
        # in status.json, kept long after the person's photo names must be gone (photo_names.py).
        for place, name in enumerate(photos, start=1):
            if not name or len(name) > 255:
                raise ValueError("each photo must be a file name of 1-255 characters")
            if has_control_characters(name):
                raise ValueError(f"photo {place} of the list must not contain line breaks, tabs or other "
                                 "control characters")
            if "/" in name or "\\" in name or name in (".", "..") or name == MANIFEST_NAME:
                raise ValueError(f"photo {place} of the list must be a plain file name, not a path")
        if len(set(photos)) != len(photos):
            raise ValueError("photo names must be unique")
        return photos


def parse_manifest(data: bytes | str) -> Manifest:
    """Parse and validate manifest bytes; :class:`ManifestError` carries a readable reason."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest is not valid JSON: {exc.__class__.__name__}") from None
    except RecursionError:  # "[[[[..." nested deeper than the parser's stack
        raise ManifestError("manifest is not valid JSON: nested too deeply") from None
    if not isinstance(raw, dict):
        raise ManifestError("manifest must be a JSON object")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        problems = tuple(_problem(err) for err in exc.errors())
        proof = raw.get("proof") if isinstance(raw.get("proof"), str) else None
        raise ManifestError("; ".join(problems), email=_readable_email(raw), problems=problems,
                            proof=proof) from None


def _problem(err: Any) -> str:
    """One schema error as a person can read it: ``field: what is wrong``."""
    where = ".".join(str(p) for p in err["loc"]) or "manifest"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        msg = f"is not a manifest field (allowed: {', '.join(Manifest.model_fields)})"
    return f"{where}: {msg}"


@dataclass(frozen=True)
class PhotoSelection:
    """Which uploaded files are the job's photos, and which listed ones never arrived."""

    found: tuple[str, ...]
    missing: tuple[str, ...]


def resolve_photos(manifest: Manifest, uploaded: list[str]) -> PhotoSelection:
    """The manifest's photo list checked against the uploaded file names (or all of them).

    ``uploaded`` are names relative to ``uploads/<job>/``; nested names and the manifest
    itself are never photos.
    """
    present = [n for n in uploaded if n != MANIFEST_NAME and "/" not in n and n not in (".", "..")]
    if manifest.photos is None:
        return PhotoSelection(found=tuple(sorted(present)), missing=())
    have = set(present)
    return PhotoSelection(found=tuple(n for n in manifest.photos if n in have),
                          missing=tuple(n for n in manifest.photos if n not in have))


def _readable_email(raw: dict[str, Any]) -> str | None:
    email = raw.get("email")
    if not isinstance(email, str):
        return None
    try:
        Manifest.model_validate({"version": 1, "email": email})
    except ValidationError:
        return None
    return email.strip()


@dataclass(frozen=True)
class ObjectRef:
    """One object an S3 event names: bucket and the decoded key."""

    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None


@dataclass(frozen=True)
class S3Event:
    """A parsed SQS body: the created objects, or the ``s3:TestEvent`` S3 sends on setup."""

    objects: tuple[ObjectRef, ...]
    is_test: bool = False


def parse_s3_event(body: str) -> S3Event:
    """Parse an S3 notification as S3 puts it on SQS; raise :class:`MalformedMessage` otherwise."""
    try:
        doc = json.loads(body)
    except (ValueError, TypeError):
        raise MalformedMessage("message body is not JSON") from None
    if not isinstance(doc, dict):
        raise MalformedMessage("message body is not a JSON object")
    if doc.get("Event") == "s3:TestEvent":
        return S3Event(objects=(), is_test=True)
    records = doc.get("Records")
    if not isinstance(records, list) or not records:
        raise MalformedMessage("message has no Records list")
    refs = []
    for i, record in enumerate(records):
        try:
            s3 = record["s3"]
            bucket = s3["bucket"]["name"]
            raw_key = s3["object"]["key"]
        except (KeyError, TypeError):
            raise MalformedMessage(f"record {i} lacks s3.bucket.name or s3.object.key") from None
        if not isinstance(bucket, str) or not isinstance(raw_key, str) or not bucket or not raw_key:
            raise MalformedMessage(f"record {i} has an empty or non-string bucket or key")
        obj = s3["object"]
        size = obj.get("size")
        etag = obj.get("eTag")
        refs.append(ObjectRef(
            bucket=bucket,
            key=unquote_plus(raw_key),
            size=size if isinstance(size, int) else None,
            etag=etag if isinstance(etag, str) else None,
        ))
    return S3Event(objects=tuple(refs))

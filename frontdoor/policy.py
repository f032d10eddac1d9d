"""What a new job may upload, as pure values: the request's checks and the POST policy's conditions.

The upload page's checks (count, type, size) run again here, because a browser is not the
only client; then each photo gets a presigned POST policy that S3 itself enforces: exactly
its key (under ``uploads/<job>/``), its declared content type, 1 byte to 25 MB, a short
expiry. Policies are handed out only once the address is proven (:mod:`frontdoor.proof`).
The manifest is not the client's to write: the front door writes it last, from the ticket it
signed (:mod:`frontdoor.tickets`), so the address it proved is the address the job emails,
and no policy here can write ``manifest.json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from frontdoor.http import HttpError
from processor.manifest import MANIFEST_NAME, Manifest, uploads_prefix

MIN_PHOTOS, MAX_PHOTOS = 10, 20
#: The worker's per-photo cap (handlers.images.ImageLimits.max_bytes); a test keeps them equal.
MAX_PHOTO_BYTES = 25 * 1024 * 1024
#: What the worker decodes (HEIC/HEIF, iPhones' default, through pillow-heif), by the name's ending.
#: Browsers report HEIC as image/heic or image/heif, or not at all (the page then judges by name).
CONTENT_TYPES = {"image/jpeg": (".jpg", ".jpeg"), "image/png": (".png",), "image/webp": (".webp",),
                 "image/heic": (".heic", ".heif"), "image/heif": (".heif", ".heic")}
TYPE_NAMES = "a JPEG, PNG, WebP or HEIC image"
#: The manifest's optional fields a person chooses on the upload page. Each travels from the
#: request through the signed tickets into the manifest exactly as the worker's own schema
#: (:class:`processor.manifest.Manifest`) validated it; no other manifest field can come from a
#: client. A new choice is one more name here (and its control on the page).
CHOICES: tuple[str, ...] = ("formats", "subject")


@dataclass(frozen=True)
class PhotoSpec:
    name: str
    content_type: str
    size: int


@dataclass(frozen=True)
class JobRequest:
    """A validated ``POST /api/jobs``: who to email and which photos will come."""

    email: str
    name: str
    photos: tuple[PhotoSpec, ...]
    choices: dict[str, Any] = field(default_factory=dict)  # CHOICES the request made, as validated

    def manifest(self) -> dict[str, Any]:
        return {"version": 1, "email": self.email, "name": self.name, "photos": [p.name for p in self.photos],
                **self.choices}


def _bad(code: str, message: str) -> HttpError:
    return HttpError(400, code, message)


def parse_job_request(doc: Any) -> JobRequest:
    """The body of ``POST /api/jobs`` checked, or a 400 naming the first problem in plain words."""
    if not isinstance(doc, dict):
        raise _bad("bad_request", "The request must be a JSON object.")
    unknown = set(doc) - {"email", "name", "photos", *CHOICES}
    if unknown:
        raise _bad("bad_request", f"Unknown field(s): {', '.join(sorted(unknown))}.")
    photos = doc.get("photos")
    if not isinstance(photos, list):
        raise _bad("bad_photos", "List the photos you are about to upload.")
    if not MIN_PHOTOS <= len(photos) <= MAX_PHOTOS:
        raise _bad("photo_count", f"Choose between {MIN_PHOTOS} and {MAX_PHOTOS} photos (you chose {len(photos)}).")
    specs = []
    for i, item in enumerate(photos, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _bad("bad_photos", f"Photo {i} has no file name.")
        name, ctype, size = item["name"], item.get("type"), item.get("size")
        if ctype not in CONTENT_TYPES:
            raise _bad("photo_type", f"{name[:80]} is not {TYPE_NAMES}.")
        if not name.lower().endswith(CONTENT_TYPES[ctype]):
            raise _bad("photo_type", f"{name[:80]}: its name does not end like a {ctype.split('/')[1].upper()} file.")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise _bad("photo_size", f"{name[:80]} is empty.")
        if size > MAX_PHOTO_BYTES:
            raise _bad("photo_size", f"{name[:80]} is over {MAX_PHOTO_BYTES // 2**20} MB.")
        specs.append(PhotoSpec(name=name, content_type=ctype, size=size))
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _bad("bad_name", "Tell us your first name (it is only used to greet you).")
    chosen = {key: doc[key] for key in CHOICES if doc.get(key) is not None}  # null: not chosen
    try:  # the worker's own manifest schema: address, name length, plain unique file names, choices
        manifest = Manifest.model_validate({"version": 1, "email": doc.get("email"), "name": name,
                                            "photos": [p.name for p in specs], **chosen})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = str(err["loc"][0]) if err["loc"] else "request"
        if where in CHOICES:  # the schema's own words: they name what it takes, and echo nothing personal
            reason = str(err["msg"]).removeprefix("Value error, ").rstrip(".")
            raise _bad(f"bad_{where}", f"That choice of {where} is not valid: "
                                       f"{'.'.join(str(p) for p in err['loc'])}: {reason}.") from None
        messages = {"email": "That email address does not look right.",
                    "name": "Your name must be 1-100 characters.",
                    "photos": "Photo names must be plain, unique file names."}
        raise _bad(f"bad_{where}", messages.get(where, "The request is not valid.")) from None
    if any(p.name == MANIFEST_NAME for p in specs):
        raise _bad("bad_photos", "Photo names must be plain, unique file names.")
    return JobRequest(email=str(manifest.email), name=str(manifest.name), photos=tuple(specs),
                      choices=manifest.model_dump(mode="json", include=set(chosen)))


def upload_key(job_id: str, photo: PhotoSpec) -> str:
    return uploads_prefix(job_id) + photo.name


def upload_conditions(job_id: str, photo: PhotoSpec) -> list[Any]:
    """The POST policy's conditions beyond bucket and exact key (boto3 adds those two)."""
    return [
        ["content-length-range", 1, MAX_PHOTO_BYTES],
        {"Content-Type": photo.content_type},
        ["starts-with", "$key", uploads_prefix(job_id)],
    ]


def upload_fields(photo: PhotoSpec) -> dict[str, str]:
    """Form fields the page must send with the file (each matches a condition)."""
    return {"Content-Type": photo.content_type}


@dataclass(frozen=True)
class UploadCount:
    """Which of a job's listed photos are in the bucket, within the size limits, at start."""

    received: tuple[str, ...]
    missing: tuple[str, ...]  # listed, but absent (or outside 1 byte..25 MB)

    @property
    def short_by(self) -> int:
        """How many more photos the job needs before it is worth a GPU."""
        return max(0, MIN_PHOTOS - len(self.received))


def count_uploads(listed: Sequence[str], uploaded: Mapping[str, int]) -> UploadCount:
    """The job's photos (its manifest's list) against what ``uploads/<job>/`` holds (name -> size)."""
    ok = [n for n in listed if 1 <= uploaded.get(n, 0) <= MAX_PHOTO_BYTES]
    return UploadCount(received=tuple(ok), missing=tuple(n for n in listed if n not in set(ok)))

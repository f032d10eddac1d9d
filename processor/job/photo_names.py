"""A rejected job's photo names: kept beside its results, gone when they go.

Why a record of its own: photo names are the person's data (often ``IMG_1234.jpg``, but also
``anna-smith-wedding.jpg``). status.json must outlive the dead-letter queue
(``job_record_expiry_days``, 90 days), the results live ``results_retention_days`` (7). So at a
job's end status.json keeps, per photo, only what names nothing: its number in the job's list,
its verdict and a message that quotes no photo (:func:`anonymous_photos`); a rejected job's
names go to ``results/<job>/photos.json`` (:func:`photo_names_key`), which the results'
lifecycle rule expires with everything else there. The status page joins the two by number and
says "photo 3" once the names have expired (``frontdoor/views.py``).

Pure values here; the worker writes the record (``processor.pipeline``), the front door reads it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from processor.manifest import results_prefix

#: The record's file name under ``results/<job>/``.
PHOTO_NAMES_FILE = "photos.json"


def photo_names_key(job_id: str) -> str:
    """``results/<job>/photos.json`` (output bucket) for a valid job id."""
    return results_prefix(job_id) + PHOTO_NAMES_FILE


def photo_label(number: int) -> str:
    """How a photo is named where its file name may not be: by its place in the job's list."""
    return f"photo {number}"


class NamedPhoto(BaseModel):
    """One photo's own name, and the message the person was told about it in full."""

    model_config = ConfigDict(frozen=True)

    photo: int = Field(ge=1)
    file: str
    message: str = ""


class PhotoNames(BaseModel):
    """The content of ``results/<job>/photos.json``."""

    model_config = ConfigDict(frozen=True)

    version: Literal[1] = 1
    photos: tuple[NamedPhoto, ...] = ()

    def by_number(self) -> dict[int, NamedPhoto]:
        return {p.photo: p for p in self.photos}

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=2).encode()


def _photos(validation: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [p for p in (validation or {}).get("photos") or [] if isinstance(p, dict)]


def _number(photo: dict[str, Any], position: int) -> int:
    """A photo's number: the one it already carries (an ended record), else its place (1-based)."""
    number = photo.get("photo")
    return number if isinstance(number, int) and not isinstance(number, bool) and number >= 1 else position


def photo_names(validation: dict[str, Any] | None) -> PhotoNames:
    """The names a validation record holds (the running form: a ``file`` per photo), numbered."""
    return PhotoNames(photos=tuple(
        NamedPhoto(photo=_number(p, i), file=p["file"], message=str(p.get("message") or ""))
        for i, p in enumerate(_photos(validation), start=1) if isinstance(p.get("file"), str)))


def anonymous_photos(validation: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Each photo's verdict with nothing that names a photo: number, ok, reason code, message.

    The one message that quotes a name is the duplicate's ("the same shot as IMG_2.jpg"): the
    name the gate put there (``duplicate_of``), found exactly once, becomes "photo 2". A message
    that still holds any of the job's photo names after that (an ambiguous match, a name that is
    also a word) is dropped, and the page shows the generic advice: never a name.
    """
    photos = _photos(validation)
    numbers = {p["file"]: _number(p, i) for i, p in enumerate(photos, start=1) if isinstance(p.get("file"), str)}
    out = []
    for i, p in enumerate(photos, start=1):
        message = p.get("message")
        message = message if isinstance(message, str) else None
        duplicate = p.get("duplicate_of")
        if message and isinstance(duplicate, str) and duplicate in numbers and message.count(duplicate) == 1:
            message = message.replace(duplicate, photo_label(numbers[duplicate]))
        if message and any(name and name in message for name in numbers):
            message = None
        out.append({"photo": _number(p, i), "ok": bool(p.get("ok")), "reason": p.get("reason"),
                    "message": message})
    return out

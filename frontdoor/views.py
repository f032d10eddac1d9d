"""What a person is shown about a job, as pure functions of status.json and results.json.

status.json is the worker's record (stage timings, progress, validation verdicts, owner and
heartbeat); the status page gets only what a person needs: where the job is, roughly how far
along, and for a rejected set which photos to replace and why. No owner, no measures.
"""

from __future__ import annotations

from typing import Any

from processor.job.photo_names import PhotoNames, photo_label
from processor.job.state import JobState, JobStatus

GENERIC_ADVICE = "Replace it with a different, clear photo of just you."

#: (headline, what it means) per state; "queued" is a job whose status.json does not exist yet.
STATE_TEXT: dict[str, tuple[str, str]] = {
    "queued": ("Waiting for a worker", "Your photos are in. A worker will pick the job up shortly."),
    JobState.RECEIVED.value: ("Received", "A worker has picked up your job."),
    JobState.VALIDATING.value: ("Checking your photos", "Each photo is checked for one clear face."),
    JobState.TRAINING.value: ("Learning your face", "The model is learning what you look like."),
    JobState.GENERATING.value: ("Creating your headshots", "Each headshot is drawn and checked for likeness."),
    JobState.DELIVERING.value: ("Packaging your headshots", "The files and your email are on their way."),
    JobState.DELIVERED.value: ("Delivered", "Your headshots are ready: we have emailed you the link."),
    JobState.REJECTED.value: ("Some photos need replacing", "We could not use enough of your photos."),
    JobState.FAILED.value: ("Something went wrong on our side",
                            "We could not finish this job; we have emailed you. You need not change your photos."),
}

#: Share of the whole job each stage stands for (train and generate are most of the time).
STAGE_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("validate", 0.05), ("prepare", 0.05), ("train", 0.45), ("generate", 0.40), ("deliver", 0.03), ("notify", 0.02))


def progress_fraction(status: JobStatus | None) -> float:
    """0..1: finished stages count whole, the running one by its step/total."""
    if status is None:
        return 0.0
    if status.state is JobState.DELIVERED:
        return 1.0
    done = 0.0
    for stage, weight in STAGE_WEIGHTS:
        timing = status.stages.get(stage)
        if timing is None or timing.started_at is None:
            continue
        if timing.finished_at is not None:
            done += weight
        elif status.progress is not None and status.progress.total > 0:
            done += weight * min(1.0, status.progress.step / status.progress.total)
    return round(min(done, 0.99), 3)


def rejected_photos(status: JobStatus, names: PhotoNames | None = None) -> list[dict[str, Any]]:
    """Each photo the gate refused, with the gate's own advice.

    status.json names no photo (:func:`processor.job.state.ended_validation`): each is joined by
    its number to ``names`` (``results/<job>/photos.json``) while the results are kept, and is
    "photo 3" once they have expired. A record written before names moved out keeps its ``file``.
    """
    named = names.by_number() if names is not None else {}
    rejected = []
    for i, p in enumerate((status.validation or {}).get("photos") or [], start=1):
        if not isinstance(p, dict) or p.get("ok"):
            continue
        number = p.get("photo") if isinstance(p.get("photo"), int) else i
        own = named.get(number)
        file = own.file if own is not None else str(p.get("file") or photo_label(number))
        advice = (own.message if own is not None else None) or p.get("message") or GENERIC_ADVICE
        rejected.append({"photo": number, "file": file, "reason": str(p.get("reason") or "unusable"),
                         "advice": str(advice)})
    return rejected


def status_view(job_id: str, status: JobStatus | None, names: PhotoNames | None = None) -> dict[str, Any]:
    """The JSON the status page polls (``names``: a rejected job's photo names, while kept)."""
    state = status.state.value if status is not None else "queued"
    headline, detail = STATE_TEXT[state]
    view: dict[str, Any] = {"job_id": job_id, "state": state, "headline": headline, "detail": detail,
                            "progress": progress_fraction(status), "terminal": bool(status and status.is_terminal)}
    if status is None:
        return view
    if status.progress is not None and not status.is_terminal:
        view["step"] = {"stage": status.progress.stage, "step": status.progress.step, "total": status.progress.total}
    if status.state is JobState.REJECTED:
        validation = status.validation or {}
        view["rejected"] = rejected_photos(status, names)
        view["usable"], view["required"] = validation.get("usable"), validation.get("required")
        view["problem"] = status.error
    if status.state is JobState.FAILED:
        view["problem"] = status.error
    return view


#: How the gallery names each format; a format it does not know is shown by its own name.
FORMAT_NAMES = {"square": "Square", "portrait": "Portrait 4:5"}
#: The box an image is drawn in when results.json (older ones) gives no pixel size: its shape.
FORMAT_SHAPES = {"square": (256, 256), "portrait": (256, 320)}
SQUARE = "square"


def _pixels(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def gallery_items(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every delivered file in order (results.json ``images``): its image's number, its name,
    its format (results.json of squares-only runs name none: square) and pixel size."""
    items = []
    for image in results.get("images") or []:
        if isinstance(image, dict) and isinstance(image.get("file"), str):
            fmt = image.get("format") if isinstance(image.get("format"), str) else SQUARE
            items.append({"number": int(image.get("number") or len(items) + 1), "file": image["file"],
                          "format": fmt, "width": _pixels(image.get("width")), "height": _pixels(image.get("height"))})
    return items


def gallery_tiles(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The gallery's tiles: one per image (``number``), its crops together, the square first.

    Why grouped: a portrait job delivers two files per image, and a person chooses images, not
    files; the page counts and rates images. Each crop keeps its own shape (``box``), so the page
    never draws a portrait cut square. ``file`` is the tile's square (what a favourite names).
    """
    tiles: dict[int, dict[str, Any]] = {}
    for item in items:
        tile = tiles.setdefault(item["number"], {"number": item["number"], "crops": []})
        width, height = item["width"], item["height"]
        tile["crops"].append({
            **item, "name": FORMAT_NAMES.get(item["format"], item["format"].capitalize()),
            "size": f"{width}\u00d7{height}" if width and height else None,
            "box": (width, height) if width and height else FORMAT_SHAPES.get(item["format"], (256, 256))})
    for tile in tiles.values():
        tile["crops"].sort(key=lambda crop: crop["format"] != SQUARE)  # stable: the rest keep their order
        tile["file"] = tile["crops"][0]["file"]
    return list(tiles.values())

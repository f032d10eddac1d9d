"""What a person is shown about a job, as pure functions of status.json and results.json.

status.json is the worker's record (stage timings, progress, validation verdicts, owner and
heartbeat); the status page gets only what a person needs: where the job is, roughly how far
along, and for a rejected set which photos to replace and why. No owner, no measures.
"""

from __future__ import annotations

from typing import Any

from processor.job.state import JobState, JobStatus

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


def rejected_photos(status: JobStatus) -> list[dict[str, str]]:
    """Each photo the gate refused, with the gate's own advice."""
    photos = (status.validation or {}).get("photos") or []
    return [{"file": str(p.get("file", "")), "reason": str(p.get("reason") or "unusable"),
             "advice": str(p.get("message") or "Replace it with a different, clear photo of just you.")}
            for p in photos if not p.get("ok")]


def status_view(job_id: str, status: JobStatus | None) -> dict[str, Any]:
    """The JSON the status page polls."""
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
        view["rejected"] = rejected_photos(status)
        view["usable"], view["required"] = validation.get("usable"), validation.get("required")
        view["problem"] = status.error
    if status.state is JobState.FAILED:
        view["problem"] = status.error
    return view


def gallery_items(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The delivered headshots in order: number and file (results.json ``images``)."""
    items = []
    for image in results.get("images") or []:
        if isinstance(image, dict) and isinstance(image.get("file"), str):
            items.append({"number": int(image.get("number") or len(items) + 1), "file": image["file"]})
    return items

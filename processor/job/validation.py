"""The validation report as the runtime keeps it: checkpoint, status.json and the rejection email.

Why a summary of its own: the gate's report (``handlers.validate.ValidationReport``) holds
local paths and dataclasses meant for the stages. The runtime needs three views of it: the
checkpoint (everything a later attempt needs to skip validation), status.json (per-photo
verdicts and numbers for debugging, never an embedding) and the rejection email (which
photos, why, what to do). All three come from here, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class PhotoVerdict:
    file: str
    ok: bool
    reason: str | None = None
    message: str = ""
    box: Box | None = None
    measures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ValidationSummary:
    """The gate's decision on a job's photos, in plain values."""

    accepted: bool
    usable: int
    required: int
    photos: tuple[PhotoVerdict, ...]
    accepted_files: tuple[str, ...]
    boxes: tuple[Box, ...]
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Checkpoint form: everything a later attempt needs to skip validation."""
        return {
            "accepted": self.accepted, "usable": self.usable, "required": self.required,
            "photos": [asdict(p) for p in self.photos], "accepted_files": list(self.accepted_files),
            "boxes": [list(b) for b in self.boxes], "problem": self.problem,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationSummary:
        photos = tuple(PhotoVerdict(file=p["file"], ok=bool(p["ok"]), reason=p.get("reason"),
                                    message=p.get("message", ""),
                                    box=tuple(p["box"]) if p.get("box") else None,  # type: ignore[arg-type]
                                    measures=dict(p.get("measures") or {}))
                       for p in data["photos"])
        return cls(accepted=bool(data["accepted"]), usable=int(data["usable"]),
                   required=int(data["required"]), photos=photos,
                   accepted_files=tuple(data["accepted_files"]),
                   boxes=tuple(tuple(b) for b in data["boxes"]),  # type: ignore[misc]
                   problem=data.get("problem"))

    def public_dict(self) -> dict[str, Any]:
        """status.json form: verdicts and numbers for debugging; no embeddings, no addresses."""
        return {"accepted": self.accepted, "usable": self.usable, "required": self.required,
                "problem": self.problem,
                "photos": [{"file": p.file, "ok": p.ok, "reason": p.reason, "message": p.message,
                            **({"box": list(p.box)} if p.box else {}), **p.measures}
                           for p in self.photos]}


_MEASURES = ("width", "height", "faces", "face_fraction", "sharpness", "exposure",
             "identity_distance", "pose_yaw", "duplicate_of", "quality", "selected")


def summarize(report: Any, required: int) -> ValidationSummary:
    """Plain values from ``handlers.validate.ValidationReport``; the training set is its ``selected``."""
    photos = []
    by_path = {}
    for p in report.photos:
        box = tuple(int(v) for v in p.face_box) if p.face_box is not None else None
        measures = {k: _plain(getattr(p, k)) for k in _MEASURES if getattr(p, k, None) is not None}
        photos.append(PhotoVerdict(file=p.file, ok=bool(p.ok), reason=p.reason, message=p.message or "",
                                   box=box, measures=measures))  # type: ignore[arg-type]
        by_path[str(p.path)] = (p.file, box)
    chosen = [by_path[str(path)] for path in report.selected]
    return ValidationSummary(
        accepted=bool(report.accepted), usable=int(report.usable), required=required,
        photos=tuple(photos), accepted_files=tuple(f for f, _ in chosen),
        boxes=tuple(b for _, b in chosen if b is not None),  # type: ignore[misc]
        problem=None if report.accepted else (report.message or None))


def _plain(value: Any) -> Any:
    """JSON-friendly numbers (numpy scalars -> Python), rounded for readability."""
    if isinstance(value, (np.floating, float)):
        return round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value

"""What generation + selection produced: one record per attempt and per kept image.

Why its own module: the generator writes these, the runtime checkpoints them (``on_image``)
and hands them back to a retried job (``done``), and delivery turns them into results.json.
They are plain values with a JSON round trip; embeddings never go in them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Attempt:
    """One generated image and how selection judged it."""

    prompt_index: int
    attempt: int
    seed: int
    accepted: bool
    reason: str | None = None  # no_face | several_faces | identity | near_duplicate | None
    distance: float | None = None  # identity distance to the user's photo set
    faces: int | None = None  # faces found (None when unscored)
    seconds: float = 0.0  # this image's share of its batch's wall time
    # (prompt_index, attempt) of every image in its batch, in order: batched sampling is
    # reproducible bit for bit only when the same batch is run again.
    batch: tuple[tuple[int, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["batch"] = [list(pair) for pair in self.batch]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attempt:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["batch"] = tuple((int(p), int(a)) for p, a in fields.get("batch", ()))
        return cls(**fields)


@dataclass(frozen=True)
class ImageRecord:
    """A kept image: its prompt, seed and file, plus every attempt made for its prompt."""

    prompt_index: int
    prompt: str
    seed: int
    attempt: int
    file: str  # file name inside SelectionResult.image_dir
    accepted: bool
    distance: float | None
    history: tuple[Attempt, ...] = ()
    # where selection found the face (x, y, width, height), None when unscored or faceless:
    # delivery cuts each format around it (handlers/crops.py)
    face_box: tuple[int, int, int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["history"] = [a.to_dict() for a in self.history]
        data["face_box"] = list(self.face_box) if self.face_box is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRecord:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k not in ("history", "face_box")}
        box = data.get("face_box")
        return cls(**fields, history=tuple(Attempt.from_dict(a) for a in data.get("history", ())),
                   face_box=tuple(int(v) for v in box) if box is not None else None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SelectionResult:
    """The images to deliver, every attempt made, and the shortfall against the request."""

    image_dir: Path
    records: tuple[ImageRecord, ...]
    attempts: tuple[Attempt, ...]
    requested: int
    mode: str
    threshold: float | None
    seconds: float  # wall time of this run's generation and scoring
    generated: int = 0  # images generated in this run (a resumed job's earlier ones excluded)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def shortfall(self) -> int:
        """How many of the requested images could not be delivered (0 when all were)."""
        return max(0, self.requested - len(self.records))

    @property
    def regenerations(self) -> int:
        return sum(1 for a in self.attempts if a.attempt > 0)

    @property
    def acceptance_rate(self) -> float:
        """Accepted attempts over all attempts (1.0 when nothing was generated)."""
        if not self.attempts:
            return 1.0
        return sum(1 for a in self.attempts if a.accepted) / len(self.attempts)

    @property
    def seconds_per_image(self) -> float:
        """This run's wall time per generated image (attempts, not only delivered ones)."""
        return self.seconds / self.generated if self.generated else 0.0

    def path(self, record: ImageRecord) -> Path:
        return self.image_dir / record.file

    def to_dict(self) -> dict[str, Any]:
        """Everything but the local folder (the generate stage's done record)."""
        return {
            "records": [r.to_dict() for r in self.records],
            "attempts": [a.to_dict() for a in self.attempts],
            "requested": self.requested, "mode": self.mode, "threshold": self.threshold,
            "seconds": self.seconds, "generated": self.generated, "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], image_dir: Path) -> SelectionResult:
        return cls(
            image_dir=image_dir,
            records=tuple(ImageRecord.from_dict(r) for r in data["records"]),
            attempts=tuple(Attempt.from_dict(a) for a in data["attempts"]),
            requested=int(data["requested"]), mode=str(data["mode"]), threshold=data.get("threshold"),
            seconds=float(data["seconds"]), generated=int(data.get("generated", 0)),
            extra=dict(data.get("extra") or {}),
        )

    def summary(self) -> dict[str, Any]:
        """The figures results.json, the email and status.json report."""
        return {
            "requested": self.requested,
            "delivered": len(self.records),
            "shortfall": self.shortfall,
            "mode": self.mode,
            "threshold": self.threshold,
            "attempts": len(self.attempts),
            "rejected": sum(1 for a in self.attempts if not a.accepted),
            "regenerations": self.regenerations,
            "acceptance_rate": round(self.acceptance_rate, 4),
            "generated": self.generated,
            "seconds": round(self.seconds, 3),
            "seconds_per_image": round(self.seconds_per_image, 3),
            "rejections_by_reason": _count_reasons(self.attempts),
            **self.extra,
        }


def _count_reasons(attempts: tuple[Attempt, ...]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for a in attempts:
        if not a.accepted and a.reason:
            counts[a.reason] = counts.get(a.reason, 0) + 1
    return dict(sorted(counts.items()))

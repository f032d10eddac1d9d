"""Held-out photos: two of the person's photos that training never sees, so the judge can fail.

Why: selection keeps images close to the training photos, so scoring the delivered images
against those same photos measures how well the model copied its training set, not whether
it learned the person. Two photos kept out of training are the references of the checkpoint
choice (:mod:`handlers.choose`) and of ``headshots eval``; selection still uses the training
photos (the more references, the steadier the centroid it compares with).

Which two: the most *typical* of the set, i.e. closest to the set's identity centroid (the
gate's ``identity_distance``), among the less turned half of the poses. A held-out photo that
is the set's only profile shot would both take that pose away from training and make the
judge measure pose rather than likeness. Only when at least :data:`MIN_USABLE` photos are
usable: below that, every photo trains (10 is the service's floor) and the record says why.

Pure: a function of the gate's values (file names, distances, yaw), no model call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Hold out only when at least this many photos are usable (the issue: 12; 10 are the floor
#: a job needs, so training keeps at least 10).
MIN_USABLE = 12
#: Photos held out when there are enough.
COUNT = 2


@dataclass(frozen=True)
class PhotoStats:
    """What the choice reads of one usable photo (from the validation summary)."""

    file: str
    identity_distance: float | None  # cosine distance to the set's identity centroid
    pose_yaw: float | None  # -1 .. +1, 0 is frontal


@dataclass(frozen=True)
class HoldOut:
    """Which photos train and which are held out, and why nothing was held out when so."""

    training: tuple[str, ...]
    held_out: tuple[str, ...]
    reason: str | None = None  # why nothing is held out (None when some are)

    def to_dict(self) -> dict[str, Any]:
        """results.json's ``held_out`` record: file names only (never pixels or embeddings)."""
        return {"count": len(self.held_out), "files": list(self.held_out),
                "training_photos": len(self.training), "reason": self.reason}


def choose_held_out(photos: Sequence[PhotoStats], min_usable: int = MIN_USABLE,
                    count: int = COUNT) -> HoldOut:
    """The ``count`` most typical photos of ``photos`` held out, when there are ``min_usable``."""
    files = tuple(p.file for p in photos)
    if len(photos) < min_usable or count <= 0:
        return HoldOut(files, (), f"only {len(photos)} usable photos: all of them train "
                                  f"(photos are held out from {min_usable} on)")
    yaws = sorted(abs(p.pose_yaw) for p in photos if p.pose_yaw is not None)
    median_yaw = yaws[(len(yaws) - 1) // 2] if yaws else None

    def typical(p: PhotoStats) -> bool:  # not among the more turned half of the set
        return median_yaw is None or p.pose_yaw is None or abs(p.pose_yaw) <= median_yaw

    def rank(p: PhotoStats) -> tuple[float, float, str]:
        distance = p.identity_distance if p.identity_distance is not None else float("inf")
        return (distance, abs(p.pose_yaw) if p.pose_yaw is not None else 1.0, p.file)

    chosen = {p.file for p in sorted((p for p in photos if typical(p)), key=rank)[:count]}
    return HoldOut(tuple(f for f in files if f not in chosen), tuple(f for f in files if f in chosen))

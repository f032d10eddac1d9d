"""Selection: does a generated image show the user, alone, and is it new?

Why against the photo *set*: one selfie can be badly lit or turned away, so a headshot is
measured against the identity of all the user's accepted photos together
(``handlers.faces.identity_distance``: cosine distance to their normalised centroid), never
against one photo. Why near-duplicates by face embedding: two images whose
faces embed almost identically are the same pose and expression, so the user would receive
the same headshot twice.

Everything here is a function of values (faces found, embeddings, thresholds); the face
model is called only in :func:`score_image`. ``handlers.faces`` is imported where it is used,
so generation without face scoring (a GPU bench without deepface) imports this module too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

REASON_NO_FACE = "no_face"
REASON_SEVERAL_FACES = "several_faces"
REASON_IDENTITY = "identity"
REASON_NEAR_DUPLICATE = "near_duplicate"

# Near-duplicate cut as a fraction of the identity threshold, so it scales with the
# recognizer. Measured with Dlib (threshold 0.09) on face-recognition's test photos: the same
# shot re-encoded, shifted, resized or brightened is 0.0007-0.0022 from the original, its
# mirror image 0.0059 and re-framed crops of it up to 0.006, while different photos of the
# same person are 0.025-0.048 apart. 0.12 * 0.09 = 0.011 sits between the two groups.
DUPLICATE_FRACTION = 0.12


class DetectedFace(Protocol):
    """What selection reads from a detected face (``handlers.faces.Face``)."""

    @property
    def embedding(self) -> np.ndarray: ...

    @property
    def box(self) -> tuple[int, int, int, int]: ...


class Analyzer(Protocol):
    """The part of ``handlers.faces.FaceAnalyzer`` selection uses."""

    @property
    def threshold(self) -> float: ...

    def faces(self, image_rgb: np.ndarray) -> Sequence[DetectedFace]: ...


@dataclass(frozen=True)
class SelectConfig:
    """How strict selection is.

    ``mode="report"`` scores every image but keeps them all (for evaluation runs).
    ``threshold=None`` uses the recognizer's own verification threshold.
    ``duplicate_distance``: two accepted faces closer than this are the same shot;
    ``None`` is :data:`DUPLICATE_FRACTION` of the identity threshold.
    ``min_face_ratio``: a face narrower than this fraction of the largest one is background
    (a blurred passer-by, a poster, a detector false positive), not a second subject.
    """

    mode: Literal["enforce", "report"] = "enforce"
    threshold: float | None = None
    duplicate_distance: float | None = None
    min_face_ratio: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in ("enforce", "report"):
            raise ValueError(f"mode must be 'enforce' or 'report', got {self.mode!r}")
        if self.threshold is not None and not 0 < self.threshold < 2:
            raise ValueError("threshold is a cosine distance in (0, 2)")
        if self.duplicate_distance is not None and not 0 <= self.duplicate_distance < 2:
            raise ValueError("duplicate_distance is a cosine distance in [0, 2)")
        if not 0 < self.min_face_ratio <= 1:
            raise ValueError("min_face_ratio must be in (0, 1]")

    def threshold_for(self, analyzer_threshold: float) -> float:
        return self.threshold if self.threshold is not None else analyzer_threshold

    def duplicate_for(self, analyzer_threshold: float) -> float:
        if self.duplicate_distance is not None:
            return self.duplicate_distance
        return DUPLICATE_FRACTION * self.threshold_for(analyzer_threshold)


@dataclass(frozen=True)
class Verdict:
    """Whether one image passes, why not, and the numbers behind the decision."""

    accepted: bool
    reason: str | None
    distance: float | None
    faces: int
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)
    box: tuple[int, int, int, int] | None = None  # the one subject's face (x, y, w, h): crops follow it


def subject_faces(faces: Sequence[DetectedFace], min_face_ratio: float) -> list[DetectedFace]:
    """The faces big enough to count as subjects: within ``min_face_ratio`` of the largest."""
    if not faces:
        return []
    largest = max(f.box[2] for f in faces)
    return [f for f in faces if f.box[2] >= min_face_ratio * largest]


def judge(faces: Sequence[DetectedFace], references: np.ndarray, threshold: float,
          min_face_ratio: float = 0.5) -> Verdict:
    """Decide on one image from its detected faces (pure: no model call)."""
    subjects = subject_faces(faces, min_face_ratio)
    if not subjects:
        return Verdict(False, REASON_NO_FACE, None, 0)
    if len(subjects) > 1:
        return Verdict(False, REASON_SEVERAL_FACES, None, len(subjects))
    from handlers.faces import identity_distance

    embedding = np.asarray(subjects[0].embedding, dtype=np.float32)
    distance = float(identity_distance(embedding, references))
    box = tuple(int(v) for v in subjects[0].box)
    if distance > threshold:
        return Verdict(False, REASON_IDENTITY, distance, 1, embedding, box)  # type: ignore[arg-type]
    return Verdict(True, None, distance, 1, embedding, box)  # type: ignore[arg-type]


def score_image(image_rgb: np.ndarray, analyzer: Analyzer, references: np.ndarray,
                config: SelectConfig | None = None) -> Verdict:
    """Detect and embed the faces of one image and judge it against the user's photo set."""
    config = config or SelectConfig()
    refs = np.asarray(references, dtype=np.float32)
    if refs.ndim != 2 or len(refs) == 0:
        raise ValueError("references must be a non-empty (n, d) array of the user's embeddings")
    faces = analyzer.faces(image_rgb)
    return judge(faces, refs, config.threshold_for(analyzer.threshold), config.min_face_ratio)


def is_near_duplicate(embedding: np.ndarray, kept: Sequence[np.ndarray], min_distance: float) -> bool:
    """True when ``embedding`` is closer than ``min_distance`` to any already kept face."""
    from handlers.faces import cosine_distance

    return any(cosine_distance(embedding, other) < min_distance for other in kept)


def drop_near_duplicates(embeddings: Sequence[np.ndarray], min_distance: float) -> list[int]:
    """Indices to keep, first come first kept: each later near-copy of a kept face is dropped."""
    kept: list[int] = []
    for i, emb in enumerate(embeddings):
        if not is_near_duplicate(emb, [embeddings[k] for k in kept], min_distance):
            kept.append(i)
    return kept


def best_of_pool(records: Sequence[ImageRecordLike], count: int) -> list[int]:
    """Indices of the ``count`` images to deliver from a pool, in pool order (the prompts
    file's order, which spreads poses and settings over the contact sheet). Which ones: passing
    before failing (report mode keeps both), then the closest to the person; unscored images
    (no distance) after scored ones, earlier first. Pure: a function of the records."""
    def rank(i: int) -> tuple[bool, float, int]:
        r = records[i]
        return (not r.accepted, r.distance if r.distance is not None else float("inf"), i)

    return sorted(sorted(range(len(records)), key=rank)[:max(0, count)])


class ImageRecordLike(Protocol):
    """What :func:`best_of_pool` reads of a kept image (``handlers.generate.records.ImageRecord``)."""

    @property
    def accepted(self) -> bool: ...

    @property
    def distance(self) -> float | None: ...

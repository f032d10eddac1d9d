"""The gate's thresholds, in one place (the runtime fills the face models from ``Settings``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from handlers.faces import FaceModelConfig
from handlers.images import ImageLimits


@dataclass(frozen=True)
class ValidateConfig:
    """Gate thresholds. Sharpness and exposure are read on a 256 px grey face patch."""

    limits: ImageLimits = field(default_factory=ImageLimits)
    face: FaceModelConfig = field(default_factory=FaceModelConfig)
    min_short_side: int = 512
    analysis_max_side: int | None = 1600  # decode size for the checks (None: full size)
    min_face_fraction: float = 0.15  # face box side / photo's shorter side
    comparable_face_ratio: float = 0.5  # a second face this big (by side) is "another person"
    # a second face inside a training crop (handlers.prepare.crop_plan) refuses the photo when
    # its box side is at least this many ORIGINAL pixels (detected at normal confidence)
    min_second_face_px: int = 40
    min_second_face_confidence: float = 0.5  # detector score (HOG's and the CNN's real faces: ~1)
    # coverings (handlers/validate/coverings.py; measured on real photos: docs/faces.md)
    max_outside: float = 0.05  # share of the face's outline beyond the frame: "face_cut"
    min_lower_skin: float = 0.30  # cheeks and chin that are skin; below: a mask ("face_covered")
    min_mouth_orientation: float = 0.7  # below: fingers across the mouth ("face_covered")
    min_eye_skin: float = 0.45  # skin around the better-seen eye; below: "eyes_covered"
    min_sharpness: float = 200.0
    min_exposure: float = 60.0
    max_exposure: float = 215.0
    max_clipped: float = 0.30  # share of the inner face crushed to black or blown to white
    duplicate_max_hamming: int = 6  # of 64 perceptual-hash bits
    min_usable: int = 10
    max_selected: int = 20
    majority_margin: float = 0.5

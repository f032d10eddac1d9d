"""Per-photo measurements of the quality gate: pure functions of pixels and numbers.

Everything here is measured on the FACE, not the whole photo: a sharp background behind a
blurred face is still a useless training photo, and a dark room around a well-lit face is
fine. The face crop is resized to a fixed size first, so the numbers do not depend on how
many megapixels the camera had (scale-normalised).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from handlers.faces import Box, Face

FACE_PATCH = 256  # side of the normalised face crop the sharpness and exposure are read on


@dataclass(frozen=True)
class FaceMeasures:
    """What the gate records about the main face (box in ORIGINAL oriented pixels)."""

    face_box: Box
    face_fraction: float  # face box's longer side / photo's shorter side
    sharpness: float  # variance of the Laplacian on the normalised grey face patch
    exposure: float  # mean luminance (0-255) of the inner face
    clipped_dark: float  # fraction of inner-face pixels <= 10
    clipped_bright: float  # fraction of inner-face pixels >= 245
    pose_yaw: float | None  # -1 (turned to the viewer's left) .. +1, from the landmarks
    contrast: float = 0.0  # (p95 - p5) / (p95 + p5) of the inner face: unchanged by exposure


def face_patch(image_rgb: np.ndarray, box: Box, size: int = FACE_PATCH) -> np.ndarray:
    """Grey ``size`` x ``size`` patch of the face box (clipped to the image)."""
    x, y, w, h = box
    crop = image_rgb[max(0, y): y + h, max(0, x): x + w]
    if crop.size == 0:
        raise ValueError(f"empty face box {box}")
    grey = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
    interp = cv2.INTER_AREA if min(grey.shape) >= size else cv2.INTER_CUBIC
    return cv2.resize(grey, (size, size), interpolation=interp)


CONTRAST_STD = 48.0  # the face patch is stretched to this standard deviation before measuring


def sharpness(patch: np.ndarray) -> float:
    """Variance of the Laplacian of a normalised face patch: high for crisp edges.

    The patch is first brought to a fixed contrast (standard deviation ``CONTRAST_STD``), so
    a dark or flat-lit face is judged on its focus, not on its exposure (exposure has its
    own check and its own advice)."""
    p = patch.astype(np.float64)
    std = float(p.std())
    if std < 1e-6:
        return 0.0
    p = (p - p.mean()) * (CONTRAST_STD / std)
    return float(cv2.Laplacian(p, cv2.CV_64F, ksize=3).var())


def inner(patch: np.ndarray) -> np.ndarray:
    """The central part of the face box (skin, eyes, mouth), without hair or background."""
    n = patch.shape[0]
    a, b = n // 5, n - n // 5
    return patch[a:b, a:b]


def measure_face(image_rgb: np.ndarray, face: Face, scale: float,
                 original_size: tuple[int, int]) -> FaceMeasures:
    """Measure the face found in ``image_rgb`` (a copy reduced by ``scale``)."""
    patch = face_patch(image_rgb, face.box)
    core = inner(patch)
    x, y, w, h = face.box
    W, H = original_size
    ox, oy = int(round(x / scale)), int(round(y / scale))
    box = (ox, oy, min(W - ox, int(round(w / scale))), min(H - oy, int(round(h / scale))))
    return FaceMeasures(
        face_box=box,
        face_fraction=max(box[2], box[3]) / float(min(W, H)),
        sharpness=sharpness(patch),
        exposure=float(core.mean()),
        clipped_dark=float((core <= 10).mean()),
        clipped_bright=float((core >= 245).mean()),
        pose_yaw=pose_yaw(face),
        contrast=contrast(core),
    )


def contrast(patch: np.ndarray) -> float:
    """Michelson-like contrast of a grey patch from its 5th and 95th percentiles: a ratio, so
    the same face one stop darker (every value scaled) keeps it."""
    lo, hi = (float(v) for v in np.percentile(patch, [5, 95]))
    return (hi - lo) / (hi + lo) if hi + lo > 0 else 0.0


def pose_yaw(face: Face) -> float | None:
    """Rough yaw from the nose base's offset from the eye midpoint along the eye line, in
    eye distances (0 frontal, +-1 about 60 degrees turned; sign: towards the viewer's right).

    Only a hint for picking varied poses; None without landmarks."""
    if face.landmarks is None or face.left_eye is None or face.right_eye is None:
        return None
    (lx, ly), (rx, ry) = face.left_eye, face.right_eye
    d = math.hypot(lx - rx, ly - ry)
    if d <= 0:
        return None
    nx, ny = face.landmarks[4]
    along = ((nx - (lx + rx) / 2.0) * (lx - rx) + (ny - (ly + ry) / 2.0) * (ly - ry)) / d
    return float(np.clip(along / (0.5 * d), -1.0, 1.0))


def comparable_faces(faces: list[Face], ratio: float) -> int:
    """How many faces are at least ``ratio`` of the largest face's size (side length).
    A small face in the background does not count."""
    if not faces:
        return 0
    big = max(max(f.box[2], f.box[3]) for f in faces)
    return sum(1 for f in faces if max(f.box[2], f.box[3]) >= ratio * big)


def faces_in_crops(faces: Sequence[Face], crops: Sequence[tuple[float, float, float, float]],
                   scale: float, min_side_px: int, min_confidence: float) -> int:
    """How many faces other than the first (the subject) lie inside a training crop.

    ``faces``: as detected, at the detector's normal confidence, in pixels of an image reduced
    by ``scale``; ``crops``: (x, y, w, h) in ORIGINAL pixels (``handlers.prepare.crop_plan``).
    A face counts when its box side is at least ``min_side_px`` original pixels, its detector
    score at least ``min_confidence`` (a margin over the detector's own threshold: a score just
    above it is where dlib's false positives sit, e.g. a round badge on a jacket at 0.03), and
    at least half of its box is inside a crop: it would be in the training image."""
    count = 0
    for f in faces[1:]:
        x, y, w, h = (v / scale for v in f.box)
        if max(w, h) < min_side_px or w <= 0 or h <= 0 or f.confidence < min_confidence:
            continue
        for cx, cy, cw, ch in crops:
            ix = max(0.0, min(x + w, cx + cw) - max(x, cx))
            iy = max(0.0, min(y + h, cy + ch) - max(y, cy))
            if ix * iy >= 0.5 * w * h:
                count += 1
                break
    return count


# --- near-duplicates: a perceptual hash of the whole photo ----------------------------
def phash(image_rgb: np.ndarray) -> int:
    """64-bit DCT perceptual hash: resizing and re-encoding keep it, a new shot does not."""
    grey = cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].flatten()
    median = float(np.median(low[1:]))
    bits = low > median
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def hamming(a: int, b: int) -> int:
    return int(bin(a ^ b).count("1"))

"""Is the whole face there to learn from? Covered eyes, a covered mouth, a face cut by the frame.

Pure functions of pixels and dlib's 5 landmarks (``handlers.faces.Face.landmarks``: two
corners of each eye, the base of the nose). Every region is placed in FACE units: ``d`` is
the distance between the eye centres, ``u`` runs along the eye line and ``v`` down the face,
so the same numbers hold for a 300 px and a 3000 px face, and for a rolled head.

What each check reads, and why (thresholds measured on real photos: ``docs/faces.md``):

- the person's own skin colour (:func:`skin_reference`): the median chroma of forehead and
  cheek points that pass a broad skin test (YCrCb), so dark and light skin are each judged
  against themselves;
- eyes (:func:`eye_skin_fraction`): how much of a box around each eye, about the size of a
  sunglasses lens, is that skin. An open eye is a small non-skin spot inside skin (lids,
  under-eye, temple); a lens makes the whole box non-skin, whether it is black, tinted or
  mirrored. The box is large because landmarks slide under a lens (they snap to its rim);
- the lower face (:func:`lower_skin_fraction`): cheeks beside the mouth and the chin. A
  mask makes them fabric;
- a hand over the mouth is skin-coloured, so it is read from shape instead
  (:func:`mouth_orientation`): a mouth is horizontal (lips, teeth, the gap between them),
  fingers across it are not;
- the frame edge (:func:`outside_fraction`): the share of the face's expected outline (from
  the landmarks) that falls outside the photo.

A photo without colour (black-and-white) cannot be judged by skin: :func:`skin_reference`
returns None and the colour checks are skipped, not failed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

Point = tuple[int, int]

# A broad skin test in YCrCb (Chai & Ngan, 1999) for picking the reference points only: the
# person's own colour then decides, within SKIN_TOLERANCE.
_CR_RANGE, _CB_RANGE = (133.0, 180.0), (77.0, 135.0)
SKIN_TOLERANCE = 10.0  # |Cr - Cr_ref| and |Cb - Cb_ref| of a point that counts as skin
LUMA_RANGE = (0.6, 1.6)  # a skin point's luminance as a multiple of the reference's
MIN_REFERENCE_POINTS = 10


@dataclass(frozen=True)
class FaceFrame:
    """Face coordinates: (u, v) in units of ``d`` from the eye midpoint -> image pixels."""

    mid: tuple[float, float]
    d: float
    cos: float
    sin: float
    nose: tuple[float, float]  # the nose base in face units (u, v)

    def to_px(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self.mid[0] + (u * self.cos - v * self.sin) * self.d
        y = self.mid[1] + (u * self.sin + v * self.cos) * self.d
        return x, y


def face_frame(landmarks: Sequence[Point]) -> FaceFrame:
    """The face's frame from dlib's 5 points (eye corners 0-1 and 2-3, nose base 4)."""
    pts = np.asarray(landmarks, dtype=np.float64)
    a, b = (pts[0] + pts[1]) / 2.0, (pts[2] + pts[3]) / 2.0
    left, right = (a, b) if a[0] <= b[0] else (b, a)  # as the viewer sees them
    d = max(1.0, float(np.linalg.norm(right - left)))
    angle = math.atan2(right[1] - left[1], right[0] - left[0])
    c, s = math.cos(angle), math.sin(angle)
    mid = (left + right) / 2.0
    rel = pts[4] - mid
    nose = ((rel[0] * c + rel[1] * s) / d, (-rel[0] * s + rel[1] * c) / d)
    return FaceFrame((float(mid[0]), float(mid[1])), d, c, s, (float(nose[0]), float(nose[1])))


def _grid(u0: float, u1: float, v0: float, v1: float, nu: int, nv: int) -> tuple[np.ndarray, np.ndarray]:
    uu, vv = np.meshgrid(np.linspace(u0, u1, nu), np.linspace(v0, v1, nv))
    return uu.ravel(), vv.ravel()


def _sample(ycc: np.ndarray, frame: FaceFrame, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """YCrCb values at face points inside the image (nearest pixel), shape (n, 3)."""
    x, y = frame.to_px(u, v)
    xi, yi = np.round(x).astype(int), np.round(y).astype(int)
    inside = (xi >= 0) & (yi >= 0) & (xi < ycc.shape[1]) & (yi < ycc.shape[0])
    return ycc[yi[inside], xi[inside]].astype(np.float32)


def _ycc_of(image_rgb: np.ndarray, frame: FaceFrame) -> tuple[np.ndarray, FaceFrame]:
    """YCrCb of the face's neighbourhood only (a 12 MP photo is never converted whole)."""
    h, w = image_rgb.shape[:2]
    r = 2.2 * frame.d
    x0, y0 = max(0, int(frame.mid[0] - r)), max(0, int(frame.mid[1] - r))
    x1, y1 = min(w, int(frame.mid[0] + r) + 1), min(h, int(frame.mid[1] + 1.6 * r) + 1)
    crop = np.ascontiguousarray(image_rgb[y0:y1, x0:x1])
    moved = FaceFrame((frame.mid[0] - x0, frame.mid[1] - y0), frame.d, frame.cos, frame.sin, frame.nose)
    return cv2.cvtColor(crop, cv2.COLOR_RGB2YCrCb), moved


def skin_reference(ycc: np.ndarray, frame: FaceFrame) -> np.ndarray | None:
    """The person's skin (Y, Cr, Cb): median of forehead and cheek points that look like skin.
    None when too few do (a black-and-white photo, a face in deep shadow)."""
    fu, fv = _grid(-0.3, 0.3, -0.7, -0.45, 9, 5)  # forehead
    cu, cv = _grid(0.45, 0.75, 0.45, 0.65, 5, 4)  # one cheek; mirrored for the other
    points = np.vstack([_sample(ycc, frame, fu, fv), _sample(ycc, frame, cu, cv),
                        _sample(ycc, frame, -cu, cv)])
    cr, cb = points[:, 1], points[:, 2]
    skin = (cr >= _CR_RANGE[0]) & (cr <= _CR_RANGE[1]) & (cb >= _CB_RANGE[0]) & (cb <= _CB_RANGE[1])
    if int(skin.sum()) < MIN_REFERENCE_POINTS:
        return None
    return np.median(points[skin], axis=0)


def _skin_fraction(points: np.ndarray, ref: np.ndarray) -> float:
    if len(points) == 0:
        return 1.0  # nothing of it is in the photo: the frame-edge check speaks for that
    ok = ((np.abs(points[:, 1] - ref[1]) <= SKIN_TOLERANCE) & (np.abs(points[:, 2] - ref[2]) <= SKIN_TOLERANCE)
          & (points[:, 0] >= LUMA_RANGE[0] * ref[0]) & (points[:, 0] <= LUMA_RANGE[1] * ref[0]))
    return float(ok.mean())


def eye_skin_fraction(ycc: np.ndarray, frame: FaceFrame, ref: np.ndarray) -> float:
    """The larger of the two eyes' skin fractions, each over a lens-sized box (0.64 d wide,
    0.6 d tall) centred on the eye: a covering must hide both eyes."""
    fractions = []
    for cx in (-0.5, 0.5):
        u, v = _grid(cx - 0.32, cx + 0.32, -0.3, 0.3, 15, 13)
        fractions.append(_skin_fraction(_sample(ycc, frame, u, v), ref))
    return max(fractions)


def lower_skin_fraction(ycc: np.ndarray, frame: FaceFrame, ref: np.ndarray) -> float:
    """Skin fraction of the cheeks beside the mouth and of the chin (not the mouth itself,
    whose lips and teeth are not skin)."""
    nu, nv = frame.nose
    su, sv = _grid(0.25, 0.55, nv + 0.1, nv + 0.55, 6, 8)
    chin_u, chin_v = _grid(nu - 0.2, nu + 0.2, nv + 0.65, nv + 0.8, 8, 3)
    points = np.vstack([_sample(ycc, frame, nu + su, sv), _sample(ycc, frame, nu - su, sv),
                        _sample(ycc, frame, chin_u, chin_v)])
    return _skin_fraction(points, ref)


def mouth_orientation(grey: np.ndarray, frame: FaceFrame) -> float:
    """Edge energy across the face's vertical axis over edge energy along it, in the mouth
    region: a mouth's lips and teeth make horizontal edges (well over 1), fingers lying across
    the mouth make edges that are not (about 1 or less)."""
    nu, nv = frame.nose
    u, v = _grid(nu - 0.35, nu + 0.35, nv + 0.2, nv + 0.65, 15, 10)
    x, y = frame.to_px(u, v)
    pad = 2
    x0, y0 = max(0, int(x.min()) - pad), max(0, int(y.min()) - pad)
    x1, y1 = min(grey.shape[1], int(x.max()) + pad + 1), min(grey.shape[0], int(y.max()) + pad + 1)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return float("inf")
    patch = grey[y0:y1, x0:x1].astype(np.float32)
    gx = cv2.Sobel(patch, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(patch, cv2.CV_32F, 0, 1, ksize=3)
    gu = np.abs(gx * frame.cos + gy * frame.sin)  # change along the eye line
    gv = np.abs(-gx * frame.sin + gy * frame.cos)  # change down the face
    xi, yi = np.round(x).astype(int) - x0, np.round(y).astype(int) - y0
    keep = (xi >= 0) & (yi >= 0) & (xi < patch.shape[1]) & (yi < patch.shape[0])
    across, along = float(gv[yi[keep], xi[keep]].sum()), float(gu[yi[keep], xi[keep]].sum())
    return across / along if along > 0 else float("inf")


def outside_fraction(frame: FaceFrame, width: int, height: int) -> float:
    """Share of the face's expected outline (0.95 d either side of the eye midpoint, from the
    forehead to the chin) that lies outside a ``width`` x ``height`` photo."""
    nv = frame.nose[1]
    u, v = _grid(-0.95, 0.95, -0.75, nv + 1.0, 20, 24)
    x, y = frame.to_px(u, v)
    outside = (x < 0) | (y < 0) | (x >= width) | (y >= height)
    return float(outside.mean())


@dataclass(frozen=True)
class Coverings:
    """What the gate records about the face's visibility (None: could not be judged)."""

    eye_skin: float | None
    lower_skin: float | None
    mouth_orientation: float
    outside: float


def measure_coverings(image_rgb: np.ndarray, landmarks: Sequence[Point],
                      original_size: tuple[int, int], scale: float) -> Coverings:
    """All four measures of one face. ``image_rgb`` may be a reduced copy of the photo
    (``scale`` = its pixels per original pixel); ``original_size`` is the photo's (W, H)."""
    frame = face_frame(landmarks)
    ycc, local = _ycc_of(image_rgb, frame)
    ref = skin_reference(ycc, local)
    grey = ycc[:, :, 0]
    w, h = original_size
    return Coverings(
        eye_skin=None if ref is None else eye_skin_fraction(ycc, local, ref),
        lower_skin=None if ref is None else lower_skin_fraction(ycc, local, ref),
        mouth_orientation=mouth_orientation(grey, local),
        outside=outside_fraction(frame, round(w * scale), round(h * scale)),
    )


__all__ = ["Coverings", "FaceFrame", "eye_skin_fraction", "face_frame", "lower_skin_fraction",
           "measure_coverings", "mouth_orientation", "outside_fraction", "skin_reference"]

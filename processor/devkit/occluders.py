"""Occluders drawn onto real face photos, as real ones look, for the gate's covering checks.

Each function takes a real photo and dlib's 5 landmarks of its face (two corners of each eye,
the base of the nose; from ``handlers.faces.FaceAnalyzer.detect``) and returns a copy with
the occluder drawn in place, scaled and rolled with the face:

- :func:`sunglasses`: two lenses in a frame with a bridge and arms towards the ears; the
  lens is ``dark`` (near black, a soft highlight), ``tinted`` (a see-through brown: the eye
  shows faintly) or ``mirrored`` (a sky-to-ground reflection with a bright band);
- :func:`pleated_mask`: a surgical mask from the nose bridge to under the chin, three pleats
  with their shading, ear loops to both sides.

Nothing here decides anything: the tests assert what the gate says about these photos.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

Point = tuple[float, float]


def _geometry(landmarks: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """(eye on the viewer's left, eye on the viewer's right, nose base, interocular distance,
    roll angle in radians)."""
    pts = np.asarray(landmarks, dtype=np.float64)
    a, b = (pts[0] + pts[1]) / 2.0, (pts[2] + pts[3]) / 2.0
    left, right = (a, b) if a[0] <= b[0] else (b, a)
    d = float(np.linalg.norm(right - left))
    angle = math.atan2(right[1] - left[1], right[0] - left[0])
    return left, right, pts[4], d, angle


def _frame_of(origin: np.ndarray, angle: float):  # type: ignore[no-untyped-def]
    """Map (u, v) in face units (u along the eye line, v down the face) to image pixels."""
    c, s = math.cos(angle), math.sin(angle)

    def to_px(u: float, v: float) -> tuple[float, float]:
        return origin[0] + u * c - v * s, origin[1] + u * s + v * c

    return to_px


def _ellipse_poly(to_px, cu: float, cv: float, ru: float, rv: float, n: int = 48) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.array([to_px(cu + ru * math.cos(t), cv + rv * math.sin(t))
                     for t in np.linspace(0, 2 * math.pi, n, endpoint=False)], dtype=np.float64)


def _blend(image: np.ndarray, layer: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None].astype(np.float32)
    return np.clip(image.astype(np.float32) * (1 - a) + layer.astype(np.float32) * a, 0, 255).astype(np.uint8)


def _mask_of(shape: tuple[int, ...], polys: list[np.ndarray], scale: int = 4) -> np.ndarray:
    """Anti-aliased float mask (0..1) of filled polygons."""
    m = np.zeros(shape[:2], np.uint8)
    for p in polys:
        cv2.fillPoly(m, [np.round(p * scale).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=2)
    return m.astype(np.float32) / 255.0


LENSES = ("dark", "tinted", "mirrored")


def sunglasses(image: np.ndarray, landmarks: Sequence[tuple[int, int]], lens: str = "dark") -> np.ndarray:
    """A copy of ``image`` (RGB uint8) with sunglasses on the face the landmarks belong to."""
    if lens not in LENSES:
        raise ValueError(f"lens must be one of {LENSES}")
    left, right, _, d, angle = _geometry(landmarks)
    mid = (left + right) / 2.0
    to_px = _frame_of(mid, angle)
    h, w = image.shape[:2]
    ru, rv, cv_ = 0.40 * d, 0.30 * d, 0.06 * d  # lens half-width, half-height, drop below the eyes
    lenses = [_ellipse_poly(to_px, sgn * 0.5 * d, cv_, ru, rv) for sgn in (-1, 1)]
    inside = _mask_of(image.shape, lenses)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = image.copy()
    if lens == "dark":
        layer = np.empty_like(image)
        layer[:] = (18, 18, 22)
        out = _blend(out, layer, inside * 0.93)
    elif lens == "tinted":
        layer = np.empty_like(image)
        layer[:] = (92, 58, 24)
        out = _blend(out, layer, inside * 0.72)
    else:  # mirrored: sky above, ground below, seen in a convex lens
        c, s = math.cos(angle), math.sin(angle)
        v = ((xx - mid[0]) * -s + (yy - mid[1]) * c) / (2 * rv)  # -0.5..0.5 across a lens
        t = np.clip(v + 0.5, 0, 1)[..., None]
        sky, ground = np.array([150, 190, 235], np.float32), np.array([120, 110, 95], np.float32)
        layer = (sky * (1 - t) + ground * t)
        band = np.exp(-((v + 0.1) ** 2) / 0.004)[..., None] * 90.0
        layer = np.clip(layer + band, 0, 255).astype(np.uint8)
        out = _blend(out, layer, inside * 0.97)
    # a soft highlight at the top outer side of each lens
    glow = np.zeros((h, w), np.float32)
    for sgn in (-1, 1):
        gx, gy = to_px(sgn * 0.5 * d - sgn * 0.15 * d, cv_ - 0.14 * d)
        glow += np.exp(-(((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * (0.07 * d) ** 2)))
    out = _blend(out, np.full_like(image, 245), np.clip(glow, 0, 1) * inside * 0.8)
    # frame, bridge and arms
    rim = max(2, int(round(0.05 * d)))
    frame_colour = (25, 22, 20)
    for p in lenses:
        cv2.polylines(out, [np.round(p * 4).astype(np.int32)], True, frame_colour, rim, cv2.LINE_AA, shift=2)
    bridge = np.array([to_px(-0.5 * d + ru * 0.9, cv_ - 0.12 * d), to_px(0, cv_ - 0.22 * d),
                       to_px(0.5 * d - ru * 0.9, cv_ - 0.12 * d)])
    cv2.polylines(out, [np.round(bridge * 4).astype(np.int32)], False, frame_colour, rim, cv2.LINE_AA, shift=2)
    for sgn in (-1, 1):
        arm = np.array([to_px(sgn * (0.5 * d + ru), cv_ - 0.1 * d), to_px(sgn * 1.15 * d, -0.05 * d)])
        cv2.polylines(out, [np.round(arm * 4).astype(np.int32)], False, frame_colour, rim, cv2.LINE_AA, shift=2)
    return out


MASK_COLOURS = {"blue": (150, 190, 220), "white": (232, 234, 236), "black": (34, 34, 38)}


def pleated_mask(image: np.ndarray, landmarks: Sequence[tuple[int, int]], colour: str = "blue") -> np.ndarray:
    """A copy of ``image`` with a pleated surgical mask and its ear loops on the face."""
    left, right, nose, d, angle = _geometry(landmarks)
    mid = (left + right) / 2.0
    to_px = _frame_of(mid, angle)
    h, w = image.shape[:2]
    top, bottom, half = 0.45 * d, 1.75 * d, 0.95 * d  # from the nose bridge to under the chin
    outline = np.array([to_px(-half * 0.9, top + 0.05 * d), to_px(0, top - 0.08 * d), to_px(half * 0.9, top + 0.05 * d),
                        to_px(half, top + 0.6 * d), to_px(half * 0.85, bottom - 0.3 * d), to_px(0.35 * d, bottom),
                        to_px(-0.35 * d, bottom), to_px(-half * 0.85, bottom - 0.3 * d), to_px(-half, top + 0.6 * d)])
    inside = _mask_of(image.shape, [outline])
    base = np.array(MASK_COLOURS[colour], np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c, s = math.cos(angle), math.sin(angle)
    v = (xx - mid[0]) * -s + (yy - mid[1]) * c  # face-down coordinate in pixels
    u = (xx - mid[0]) * c + (yy - mid[1]) * s
    shade = np.ones((h, w), np.float32)
    for k in range(3):  # three pleats: a dark fold line with light above it
        pv = top + (0.35 + 0.3 * k) * d
        shade -= 0.22 * np.exp(-((v - pv) ** 2) / (2 * (0.025 * d) ** 2))
        shade += 0.08 * np.exp(-((v - pv + 0.07 * d) ** 2) / (2 * (0.05 * d) ** 2))
    shade *= 1.0 - 0.18 * (np.abs(u) / half) ** 2  # rounder towards the cheeks
    layer = np.clip(base[None, None, :] * shade[..., None], 0, 255).astype(np.uint8)
    out = _blend(image, layer, inside)
    loop = max(1, int(round(0.025 * d)))
    for sgn in (-1, 1):
        for a, b in ((top + 0.1 * d, -0.05 * d), (bottom - 0.35 * d, 0.9 * d)):
            pts = np.array([to_px(sgn * half * 0.95, a), to_px(sgn * 1.2 * d, (a + b) / 2 - 0.1 * d),
                            to_px(sgn * 1.25 * d, b)])
            cv2.polylines(out, [np.round(pts * 4).astype(np.int32)], False, (240, 240, 240), loop, cv2.LINE_AA, shift=2)
    return out


__all__ = ["LENSES", "MASK_COLOURS", "pleated_mask", "sunglasses"]

"""Delivery formats: which canvas a job generates on, and where each format is cut from it.

Why one canvas for all formats: a square and a 4:5 portrait cut from the same generated image
are the same headshot (same face, pose, light), so a person can use one on LinkedIn and the
other on a speaker page. Every format is the full width of the canvas, so the cut only
chooses how much above and below the face to keep.

- Square only (the default): the canvas is ``resolution`` square and the square is all of it:
  delivered exactly as generated, 1024x1024 at the service's resolution.
- With portraits: the canvas is SDXL's nearest-to-4:5 portrait bucket, 896x1152 at 1024
  (one of the aspect buckets SDXL was trained on: Podell et al. 2023, "SDXL", appendix on
  multi-aspect training). The portrait is its full width at 4:5, 896x1120, delivered at that
  size (no pixels are invented). The square is its full width at 1:1, 896x896, resized to
  1024x1024 with Lanczos, so every square a job delivers is the same size.
- Each cut puts the face's centre at :data:`FACE_CENTRE` of the cut (half-way across, 40 %
  down: the eyes then sit near the upper third, the usual headshot framing), clamped inside
  the canvas; an image without a detected face is cut as if its face were at
  :data:`NO_FACE_CENTRE` of the canvas (SDXL draws heads in the upper part of a portrait).

Everything here is pure except :func:`cut` (one PIL crop and resize).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

SQUARE = "square"
PORTRAIT = "portrait"


@dataclass(frozen=True)
class Format:
    """One delivery format: its aspect (width:height) and the file name suffix it adds."""

    name: str
    aspect: tuple[int, int]
    suffix: str  # "" for the square: its files keep the contract's name, headshot-001.jpg


#: Every format, in delivery order (the square first: the contact sheet and the email use it).
FORMATS: dict[str, Format] = {
    SQUARE: Format(SQUARE, (1, 1), ""),
    PORTRAIT: Format(PORTRAIT, (4, 5), "-portrait"),
}
DEFAULT_FORMATS: tuple[str, ...] = (SQUARE,)
#: SDXL's 896x1152 training bucket, as a fraction of the 1024 resolution it belongs to.
PORTRAIT_CANVAS_AT_1024 = (896, 1152)
FACE_CENTRE = (0.5, 0.4)
NO_FACE_CENTRE = (0.5, 0.38)

Box = tuple[int, int, int, int]  # x, y, width, height (a face detector's box)


def normalize_formats(formats: Sequence[str] | None) -> tuple[str, ...]:
    """``formats`` in delivery order, checked; None or empty is the default (square only)."""
    if not formats:
        return DEFAULT_FORMATS
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown formats {unknown}; known: {list(FORMATS)}")
    if SQUARE not in formats:
        raise ValueError("every job delivers its squares: formats must include 'square'")
    return tuple(name for name in FORMATS if name in formats)


def _multiple_of_8(value: float) -> int:
    return max(8, int(round(value / 8)) * 8)


def canvas_size(resolution: int, formats: Sequence[str]) -> tuple[int, int]:
    """(width, height) to generate at: square at ``resolution``, or SDXL's portrait bucket scaled to it.

    Multiples of 8, as SDXL's VAE needs.
    """
    if tuple(normalize_formats(formats)) == (SQUARE,):
        return resolution, resolution
    scale = resolution / 1024
    return _multiple_of_8(PORTRAIT_CANVAS_AT_1024[0] * scale), _multiple_of_8(PORTRAIT_CANVAS_AT_1024[1] * scale)


def square_side(canvas: tuple[int, int]) -> int:
    """The side of the square delivered from ``canvas``: the ``resolution`` it was generated for.

    Why: delivery sees a generated image, not the settings it was made with. A square canvas is
    its own side; a portrait canvas is inverted through :func:`canvas_size`; any other canvas
    (not one this service generates) gives its largest square cut, unresized.
    """
    width, height = canvas
    if width == height:
        return width
    guess = _multiple_of_8(height * 1024 / PORTRAIT_CANVAS_AT_1024[1])
    for resolution in (guess, guess - 8, guess + 8):
        if canvas_size(resolution, (SQUARE, PORTRAIT)) == (width, height):
            return resolution
    return min(width, height) - min(width, height) % 2


def cut_size(canvas: tuple[int, int], fmt: str) -> tuple[int, int]:
    """The largest (width, height) of ``fmt``'s aspect inside ``canvas`` (even sides)."""
    width, height = canvas
    a, b = FORMATS[fmt].aspect
    w = min(width, height * a // b)
    h = w * b // a
    return w - w % 2, h - h % 2


def output_size(canvas: tuple[int, int], fmt: str) -> tuple[int, int]:
    """What a format is delivered at: the square at :func:`square_side`; other formats as cut."""
    if fmt == SQUARE:
        side = square_side(canvas)
        return side, side
    return cut_size(canvas, fmt)


def cut_box(canvas: tuple[int, int], fmt: str, face: Box | None) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of ``fmt``'s cut from ``canvas``, placed around ``face``."""
    width, height = canvas
    w, h = cut_size(canvas, fmt)
    if face is not None:
        fx, fy, fw, fh = face
        cx, cy = fx + fw / 2, fy + fh / 2
    else:
        cx, cy = NO_FACE_CENTRE[0] * width, NO_FACE_CENTRE[1] * height
    left = _clamp(round(cx - FACE_CENTRE[0] * w), 0, width - w)
    top = _clamp(round(cy - FACE_CENTRE[1] * h), 0, height - h)
    return left, top, left + w, top + h


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def canvas_formats(canvas: tuple[int, int]) -> tuple[str, ...]:
    """The formats a canvas was generated for: portraits too when it is taller than wide."""
    width, height = canvas
    return (SQUARE, PORTRAIT) if height > width else DEFAULT_FORMATS


def cut(image: Image.Image, fmt: str, face: Box | None) -> Image.Image:
    """``fmt``'s cut of the generated ``image`` at its delivery size (:func:`output_size`)."""
    canvas = image.size
    box = cut_box(canvas, fmt, face)
    size = output_size(canvas, fmt)
    piece = image.crop(box) if box != (0, 0, *canvas) else image
    if piece.size != size:
        piece = piece.resize(size, Image.Resampling.LANCZOS)
    return piece

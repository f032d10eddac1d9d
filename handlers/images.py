"""Defended image decoding: uploads are untrusted bytes.

Every stage that opens a person's photo goes through here, so the same rules hold
everywhere: file-size and pixel caps are checked from the header BEFORE any pixel is
decoded (decompression bombs), only the formats we promise are taken, EXIF orientation is
applied before anything else looks at the pixels, and CMYK / palette / alpha / 16-bit
images come out as plain RGB ``uint8``. Failures raise :class:`ImageError` with one of the
gate's reason codes, so the validation report can show the person what to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from handlers.errors import StageError

UNREADABLE = "unreadable"
UNSUPPORTED_FORMAT = "unsupported_format"
TOO_LARGE = "too_large"

# EXIF orientations that swap width and height (transpose, 90 CW, transverse, 90 CCW).
_SWAPS_AXES = frozenset({5, 6, 7, 8})
# ISO-BMFF brands of HEIF/AVIF files: recognised even when no decoder is installed.
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif")
# Magic numbers of real image formats we do not take, for files PIL cannot even open
# (e.g. a JPEG-compressed TIFF): they are "unsupported", not "unreadable".
_OTHER_IMAGE_MAGIC = (b"II*\x00", b"MM\x00*", b"GIF87a", b"GIF89a", b"BM", b"\x00\x00\x00\x0cjP  ")


def _heif_available() -> bool:
    """Register pillow-heif's opener when the optional ``heic`` extra is installed."""
    try:
        import pillow_heif  # type: ignore[import-not-found]
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


HEIF_DECODER = _heif_available()


class ImageError(StageError):
    """A photo we will not decode; ``code`` is a gate reason code."""


@dataclass(frozen=True)
class ImageLimits:
    """What an upload may be. The defaults are the job contract's (DESIGN.md)."""

    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000
    formats: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP", "HEIF"})


@dataclass(frozen=True)
class ImageInfo:
    """What the header says; ``width``/``height`` are AFTER EXIF orientation."""

    format: str
    width: int
    height: int
    orientation: int
    file_bytes: int


@dataclass(frozen=True)
class DecodedImage:
    """Pixels (possibly reduced, see :func:`decode_image`) plus the full-size geometry.

    ``scale`` maps pixel coordinates of ``pixels`` to the original oriented image:
    ``original = decoded / scale``."""

    pixels: np.ndarray
    info: ImageInfo

    @property
    def scale(self) -> float:
        return self.pixels.shape[1] / float(self.info.width)


def _sniff_format(path: Path) -> str | None:
    """Name of a known image format we cannot decode here, from the first bytes."""
    with path.open("rb") as fh:
        head = fh.read(16)
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIC/HEIF (no decoder installed)"
    if any(head.startswith(m) for m in _OTHER_IMAGE_MAGIC):
        return "this image format"
    return None


def _open(path: Path, limits: ImageLimits) -> tuple[Image.Image, ImageInfo]:
    """Open lazily (header only) and enforce every cap that needs no pixels."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageError(UNREADABLE, f"cannot read the file: {exc.strerror}") from None
    if size == 0:
        raise ImageError(UNREADABLE, "the file is empty")
    if size > limits.max_bytes:
        raise ImageError(TOO_LARGE, f"file is {size / 2**20:.1f} MB, over the "
                                    f"{limits.max_bytes / 2**20:.0f} MB limit")
    try:
        img = Image.open(path)
    except Image.DecompressionBombError:
        raise ImageError(TOO_LARGE, "image dimensions are far over the pixel limit") from None
    except UnidentifiedImageError:
        known = _sniff_format(path)
        if known:
            raise ImageError(UNSUPPORTED_FORMAT, f"{known} is not accepted") from None
        raise ImageError(UNREADABLE, "not an image file we can recognise") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(UNREADABLE, f"corrupt image header ({exc})") from None
    fmt = img.format or "unknown"
    if fmt not in limits.formats or getattr(img, "is_animated", False):
        kind = f"animated {fmt}" if getattr(img, "is_animated", False) else fmt
        img.close()
        raise ImageError(UNSUPPORTED_FORMAT, f"{kind} images are not accepted")
    w, h = img.size
    if w <= 0 or h <= 0:
        img.close()
        raise ImageError(UNREADABLE, "image has no pixels")
    if w * h > limits.max_pixels:
        img.close()
        raise ImageError(TOO_LARGE, f"{w}x{h} is {w * h / 1e6:.0f} megapixels, over the "
                                    f"{limits.max_pixels / 1e6:.0f} MP limit")
    try:
        orientation = int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block is not a broken image
        orientation = 1
    if orientation in _SWAPS_AXES:
        w, h = h, w
    return img, ImageInfo(format=fmt, width=w, height=h, orientation=orientation, file_bytes=size)


def probe_image(path: Path, limits: ImageLimits | None = None) -> ImageInfo:
    """Header facts, with every cap enforced, without decoding pixels."""
    img, info = _open(Path(path), limits or ImageLimits())
    img.close()
    return info


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB: alpha over white, palette expanded, 16-bit scaled down."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode != "RGB":
        return img.convert("RGB")
    return img


def decode_image(path: Path, limits: ImageLimits | None = None,
                 max_side: int | None = None) -> DecodedImage:
    """Decode to RGB ``uint8`` with EXIF orientation applied.

    With ``max_side``, the result's longer side is at most ``max_side``; big JPEGs are then
    decoded at 1/2, 1/4 or 1/8 scale by the JPEG decoder itself (``draft``), which is what
    keeps a 12 MP photo cheap when only a 1.5 MP view is needed."""
    limits = limits or ImageLimits()
    img, info = _open(Path(path), limits)
    try:
        if max_side is not None and max(img.size) > max_side and img.format == "JPEG":
            s = max_side / float(max(img.size))
            img.draft("RGB", (math.ceil(img.size[0] * s), math.ceil(img.size[1] * s)))
        try:
            img.load()
            img = ImageOps.exif_transpose(img) or img
            img = _to_rgb(img)
        except Image.DecompressionBombError:
            raise ImageError(TOO_LARGE, "image dimensions are far over the pixel limit") from None
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise ImageError(UNREADABLE, f"the image data is corrupt or truncated ({exc})") from None
        if max_side is not None and max(img.size) > max_side:
            s = max_side / float(max(img.size))
            new = (max(1, round(img.size[0] * s)), max(1, round(img.size[1] * s)))
            img = img.resize(new, Image.Resampling.BILINEAR, reducing_gap=2.0)
        pixels = np.array(img, dtype=np.uint8)
    finally:
        img.close()
    return DecodedImage(pixels=pixels, info=info)


def load_image(path: Path, limits: ImageLimits | None = None,
               max_side: int | None = None) -> np.ndarray:
    """RGB ``uint8`` array (H, W, 3) of a photo, EXIF applied; see :func:`decode_image`."""
    return decode_image(path, limits, max_side).pixels

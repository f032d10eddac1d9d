"""Defended image decoding: uploads are untrusted bytes.

Every stage that opens a person's photo goes through here, so the same rules hold
everywhere: file-size and pixel caps are checked from the header BEFORE any pixel is
decoded (decompression bombs), only the formats we promise are taken, EXIF orientation is
applied before anything else looks at the pixels, and CMYK / palette / alpha / 16-bit
images come out as plain RGB ``uint8``. Failures raise :class:`ImageError` with one of the
gate's reason codes, so the validation report can show the person what to do.

HEIC/HEIF (the iPhone camera's default) is decoded by pillow-heif (libheif) straight into an
array that is reduced at once, so a 12 MP photo costs what libheif needs and no more; its
container rotation (``irot``/``imir``, which iPhones write with the EXIF orientation) is
applied by libheif. libheif has no reduced decode, so HEIF is capped by the bytes its decode
needs (:attr:`ImageLimits.max_decode_bytes`), not by a pixel count.

Multi-picture stills (MPO: a JPEG followed by previews or a second stereo view, as many
phones and cameras write) are JPEGs: their primary picture is what we read. Animations
(GIF, APNG, animated WebP) are refused. High bit depths are scaled to 8 bits one band of
rows at a time, and a reduced decode shrinks before it converts to RGB or rotates, so a
small-on-disk 49 MP 16-bit PNG never costs full-size float copies.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from handlers.errors import StageError

UNREADABLE = "unreadable"
UNSUPPORTED_FORMAT = "unsupported_format"
TOO_LARGE = "too_large"
MISSING = "missing"  # the file was never received (a listed photo that was not uploaded)

#: Formats that are JPEG files with more pictures after the first (Multi-Picture Format):
#: read as their primary picture, never counted as animations.
JPEG_FAMILY = frozenset({"JPEG", "MPO"})
# PIL's transpose for each EXIF orientation (ImageOps.exif_transpose's table), applied after
# any reduction so a rotation never copies the full-size image.
_ORIENT_OPS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
               6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_90}
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_BAND_ROWS = 512  # rows per band when scaling a high-depth image to 8 bits

# EXIF orientations that swap width and height (transpose, 90 CW, transverse, 90 CCW).
_SWAPS_AXES = frozenset({5, 6, 7, 8})
# ISO-BMFF brands of HEIF/AVIF files: recognised even when no decoder is installed.
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif")
# Magic numbers of real image formats we do not take, for files PIL cannot even open
# (e.g. a JPEG-compressed TIFF): they are "unsupported", not "unreadable".
_OTHER_IMAGE_MAGIC = (b"II*\x00", b"MM\x00*", b"GIF87a", b"GIF89a", b"BM", b"\x00\x00\x00\x0cjP  ")


def _heif_available() -> bool:
    """Register pillow-heif's opener (a runtime dependency; a checkout without it still
    recognises HEIC and refuses it as unsupported rather than unreadable)."""
    try:
        import pillow_heif
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
    #: Formats Pillow cannot decode at a reduced size (all but JPEG) are decoded whole, so their
    #: pixel count is the worker's memory: 8.4 MP keeps any one photo's decode under 100 MB
    #: (RGBA PNG, the costliest: ~80 MB). Phone photos that big are JPEG (or HEIC, 12 MP, which
    #: the upload page's "Most Compatible" advice turns into JPEG).
    max_pixels_full_decode: int = 8_400_000
    #: HEIF's decode (libheif) holds its YCbCr planes and the RGB result together: 4.7 bytes per
    #: pixel measured (a 48 MP iPhone photo peaks at 224 MB, a 12 MP one at 58 MB: docs/faces.md).
    #: The cap is those bytes, sized so a 48 MP "HEIF Max" photo is taken.
    max_decode_bytes: int = 240 * 2**20
    heif_bytes_per_pixel: float = 4.7
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
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS and not HEIF_DECODER:
        return "HEIC/HEIF (no decoder installed)"
    if any(head.startswith(m) for m in _OTHER_IMAGE_MAGIC):
        return "this image format"
    return None


def _open(path: Path, limits: ImageLimits) -> tuple[Image.Image, ImageInfo]:
    """Open lazily (header only) and enforce every cap that needs no pixels."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageError(MISSING, "the file was never received") from None
    except OSError as exc:
        raise ImageError(UNREADABLE, f"cannot read the file: {exc.strerror}") from None
    if not path.is_file():
        raise ImageError(UNREADABLE, "not a regular file")
    if size == 0:
        raise ImageError(UNREADABLE, "the file is empty")
    if size > limits.max_bytes:
        raise ImageError(TOO_LARGE, f"file is {size / 2**20:.1f} MB, over the "
                                    f"{limits.max_bytes / 2**20:.0f} MB limit")
    try:
        with warnings.catch_warnings():  # our own, lower pixel cap is enforced just below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError:
        known = _sniff_format(path)  # a huge GIF or TIFF: the format is the first thing wrong
        if known:
            raise ImageError(UNSUPPORTED_FORMAT, f"{known} is not accepted") from None
        raise ImageError(TOO_LARGE, "image dimensions are far over the pixel limit") from None
    except UnidentifiedImageError:
        known = _sniff_format(path)
        if known:
            raise ImageError(UNSUPPORTED_FORMAT, f"{known} is not accepted") from None
        raise ImageError(UNREADABLE, "not an image file we can recognise") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(UNREADABLE, f"corrupt image header ({exc})") from None
    fmt = img.format or "unknown"
    accepted = fmt in limits.formats or (fmt in JPEG_FAMILY and "JPEG" in limits.formats)
    animated = fmt not in JPEG_FAMILY and bool(getattr(img, "is_animated", False))
    if not accepted or animated:
        kind = f"animated {fmt}" if animated else fmt
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
    if fmt == "HEIF" and w * h * limits.heif_bytes_per_pixel > limits.max_decode_bytes:
        img.close()
        raise ImageError(TOO_LARGE, f"a HEIC of {w}x{h} needs {w * h * limits.heif_bytes_per_pixel / 2**20:.0f} MB "
                                    f"to decode, over the {limits.max_decode_bytes / 2**20:.0f} MB we allow")
    if fmt not in JPEG_FAMILY and fmt != "HEIF" and w * h > limits.max_pixels_full_decode:
        img.close()
        raise ImageError(TOO_LARGE, f"a {fmt} of {w}x{h} is {w * h / 1e6:.1f} megapixels, over the "
                                    f"{limits.max_pixels_full_decode / 1e6:.1f} MP we take for formats "
                                    f"other than JPEG; a JPEG may have up to "
                                    f"{limits.max_pixels / 1e6:.0f} MP")
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


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """16-bit / 32-bit grey -> 8-bit grey, scaled (not clipped), one band of rows at a time.

    Full scale is 65535 for 16-bit modes; for ``I``/``F`` it is 255 unless a value is above
    255 (then 65535). Peak extra memory is one band, never a full-size float copy."""
    lo, hi = img.getextrema()
    top = 65535.0 if img.mode.startswith("I;16") or float(hi) > 255 else 255.0
    w, h = img.size
    out = np.empty((h, w), dtype=np.uint8)
    for y0 in range(0, h, _BAND_ROWS):
        y1 = min(h, y0 + _BAND_ROWS)
        band = np.asarray(img.crop((0, y0, w, y1)), dtype=np.float32)
        band *= np.float32(255.0 / top)
        band += np.float32(0.5)
        np.clip(band, 0, 255, out=band)
        out[y0:y1] = band.astype(np.uint8)
    return Image.fromarray(out, mode="L")


def _to_8bit(img: Image.Image) -> Image.Image:
    """Any PIL mode -> ``L``, ``LA``, ``RGB`` or ``RGBA``: palette expanded, 16-bit scaled down.

    Alpha is kept (and flattened by :func:`_flatten` after any reduction: compositing a
    full-size image costs three full-size copies); grey stays one channel, so a reduction
    that follows works on a third of the bytes."""
    if img.mode in _HIGH_DEPTH_MODES:
        return _high_depth_to_l(img)
    if img.mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("L", "LA", "RGB", "RGBA"):
        return img
    if img.mode in ("PA", "RGBa"):
        return img.convert("RGBA")
    if img.mode == "La":
        return img.convert("LA")
    if img.mode == "1":
        return img.convert("L")
    return img.convert("RGB")


def _flatten(img: Image.Image) -> Image.Image:
    """``LA``/``RGBA`` over white -> ``L``/``RGB`` (transparent pixels become white)."""
    if img.mode not in ("LA", "RGBA"):
        return img
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    out = Image.alpha_composite(background, rgba).convert("RGB")
    return out


def decode_image(path: Path, limits: ImageLimits | None = None,
                 max_side: int | None = None) -> DecodedImage:
    """Decode to RGB ``uint8`` with EXIF orientation applied.

    With ``max_side``, the result's longer side is at most ``max_side``; big JPEGs are then
    decoded at 1/2, 1/4 or 1/8 scale by the JPEG decoder itself (``draft``), which is what
    keeps a 12 MP photo cheap when only a 1.5 MP view is needed."""
    limits = limits or ImageLimits()
    opened, info = _open(Path(path), limits)
    if info.format == "HEIF":
        opened.close()
        return DecodedImage(pixels=_decode_heif(Path(path), max_side), info=info)
    img = opened
    try:
        if max_side is not None and max(img.size) > max_side and img.format in JPEG_FAMILY:
            s = max_side / float(max(img.size))
            img.draft("RGB", (math.ceil(img.size[0] * s), math.ceil(img.size[1] * s)))
        try:
            img.load()
            img = _to_8bit(img)
            if img is not opened:
                opened.close()  # frees the decoded original before anything else is allocated
            if max_side is not None and max(img.size) > max_side:
                s = max_side / float(max(img.size))
                new = (max(1, round(img.size[0] * s)), max(1, round(img.size[1] * s)))
                img = img.resize(new, Image.Resampling.BILINEAR, reducing_gap=2.0)
            img = _flatten(img)
            if info.orientation in _ORIENT_OPS:
                img = img.transpose(_ORIENT_OPS[info.orientation])
            if img.mode == "L":  # grey -> RGB by numpy: one full-size copy, not two
                pixels = np.repeat(np.asarray(img, dtype=np.uint8)[:, :, None], 3, axis=2)
            else:
                pixels = np.array(img.convert("RGB") if img.mode != "RGB" else img, dtype=np.uint8)
        except Image.DecompressionBombError:
            raise ImageError(TOO_LARGE, "image dimensions are far over the pixel limit") from None
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise ImageError(UNREADABLE, f"the image data is corrupt or truncated ({exc})") from None
    finally:
        img.close()
        opened.close()
    return DecodedImage(pixels=pixels, info=info)


def _decode_heif(path: Path, max_side: int | None) -> np.ndarray:
    """The primary picture of a HEIF file as RGB ``uint8``, upright, reduced to ``max_side``.

    libheif's RGB buffer is read as an array without a copy and reduced at once: Pillow's own
    path would add a 4-byte-per-pixel copy (a 48 MP photo: +190 MB)."""
    import pillow_heif

    try:
        heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=True)
        picture = heif[heif.primary_index]
        full = np.asarray(picture)
        if full.ndim == 2:
            full = full[:, :, None]
        h, w = full.shape[:2]
        if max_side is not None and max(h, w) > max_side:
            s = max_side / float(max(h, w))
            full = cv2.resize(full, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
            if full.ndim == 2:
                full = full[:, :, None]
        pixels = np.array(full, dtype=np.uint8)  # own the (reduced) pixels, let libheif's go
        del full, picture, heif
    except (OSError, ValueError, SyntaxError, EOFError, RuntimeError) as exc:
        raise ImageError(UNREADABLE, f"the image data is corrupt or truncated ({exc})") from None
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    if pixels.shape[2] == 4:  # alpha over white, as for PNG
        rgb, alpha = pixels[:, :, :3].astype(np.float32), pixels[:, :, 3:].astype(np.float32) / 255.0
        return np.clip(rgb * alpha + 255.0 * (1.0 - alpha) + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(pixels[:, :, :3])


def load_image(path: Path, limits: ImageLimits | None = None,
               max_side: int | None = None) -> np.ndarray:
    """RGB ``uint8`` array (H, W, 3) of a photo, EXIF applied; see :func:`decode_image`."""
    return decode_image(path, limits, max_side).pixels

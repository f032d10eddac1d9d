"""Fuzz: defended image decoding (``handlers.images.decode_image``) on untrusted bytes.

Invariants for every input: the result is RGB ``uint8`` with the oriented geometry the header
promised (and at most ``max_side`` when asked), or :class:`ImageError` with one of the gate's
decode codes (never another exception type); a truncated file is refused or decodes to exactly
the pixels of the whole file; and peak resident memory (VmHWM, reset before each case) grows
by less than 100 MB, bombs included.

Each generator names the reason code the person must get (``EXPECT_*``).
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import Image

from handlers.images import ImageError, decode_image
from tests.fixtures.hypothesis_profiles import examples

pytestmark = pytest.mark.fuzz

DECODE_CODES = {"unreadable", "unsupported_format", "too_large"}
OK = None  # the expected "code" of a photo that must decode
EXPECT_ACCEPTED = OK  # JPEG, PNG, WebP, MPO in any mode, EXIF orientation, CMYK, 16-bit
EXPECT_OTHER_FORMAT = "unsupported_format"  # BMP, GIF, TIFF, AVIF... (PDF: unreadable, see below)
EXPECT_ANIMATED = "unsupported_format"
EXPECT_BOMB = "too_large"
EXPECT_JUNK = {"unreadable", "unsupported_format"}
EXPECT_TRUNCATED = "unreadable, or the whole file's exact pixels"
MEMORY_BOUND = 100 * 2**20

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _hwm() -> int:
    return int(re.search(r"VmHWM:\s+(\d+)", _STATUS.read_text()).group(1)) * 1024  # type: ignore[union-attr]


def _reset_hwm() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:  # not Linux, or not allowed: the bound is then checked less strictly
        return False


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-images") / "upload"


def _decode(upload: Path, data: bytes, max_side: int | None) -> np.ndarray | ImageError:
    """Decode ``data`` as an upload, checking every invariant; returns pixels or the error."""
    upload.write_bytes(data)
    exact = _reset_hwm()
    before = _hwm()
    try:
        d = decode_image(upload, max_side=max_side)
    except ImageError as exc:
        assert exc.code in DECODE_CODES and exc.message
        result: np.ndarray | ImageError = exc
    else:
        px = d.pixels
        assert px.dtype == np.uint8 and px.ndim == 3 and px.shape[2] == 3 and px.size > 0
        assert d.info.width * d.info.height <= 50_000_000
        # the full oriented size, or that size scaled so its longer side is max_side (+-1 px)
        s = 1.0 if max_side is None else min(1.0, max_side / max(d.info.width, d.info.height))
        want = (max(1, round(d.info.height * s)), max(1, round(d.info.width * s)))
        assert abs(px.shape[0] - want[0]) <= 1 and abs(px.shape[1] - want[1]) <= 1, (px.shape, want)
        if max_side is None:
            assert px.shape[:2] == want
        else:
            assert max(px.shape[:2]) <= max_side
        result = px
    if exact:
        assert _hwm() - before < MEMORY_BOUND
    return result


# --- generators -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Encoded:
    data: bytes
    format: str
    mode: str
    size: tuple[int, int]
    orientation: int = 1


_ACCEPTED_MODES = {
    "JPEG": ["L", "RGB", "CMYK"],
    "MPO": ["RGB", "L"],
    "PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"],
    "WEBP": ["RGB", "RGBA"],
}
_OTHER_FORMATS = {  # every format Pillow writes and opens, with the modes it saves: unsupported_format
    "BMP": ["1", "L", "P", "RGB", "RGBA"], "GIF": ["1", "L", "LA", "P", "RGB", "RGBA"],
    "TIFF": ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16"], "ICO": ["1", "L", "LA", "P", "RGB", "RGBA"],
    "PPM": ["1", "L", "RGB", "I;16"], "TGA": ["1", "L", "LA", "P", "RGB", "RGBA"], "PCX": ["1", "L", "P", "RGB"],
    "SGI": ["L", "RGB", "RGBA"], "QOI": ["RGB", "RGBA"], "JPEG2000": ["L", "LA", "RGB", "RGBA", "CMYK"],
    "AVIF": ["L", "RGB", "RGBA"], "MSP": ["1"], "XBM": ["1"], "DDS": ["L", "LA", "RGB", "RGBA"], "BLP": ["P"],
    "ICNS": ["RGB", "RGBA"], "SPIDER": ["L"], "EPS": ["L", "RGB", "CMYK"],
}
_UNOPENABLE_FORMATS = {"PDF": ["L", "RGB", "CMYK"], "PALM": ["1", "P"]}  # Pillow writes, never opens: unreadable


def _pixels(seed: int, size: tuple[int, int], mode: str) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    base[:, : max(1, w // 2)] //= 2  # some structure, so lossy codecs keep distinct halves
    img = Image.fromarray(base, "RGB")
    if mode in ("I;16", "I"):
        deep = rng.integers(0, 65536, size=(h, w), dtype=np.uint16 if mode == "I;16" else np.int32)
        return Image.fromarray(deep.astype(np.uint16)) if mode == "I;16" else Image.fromarray(deep, "I")
    if mode == "P":
        return img.quantize(16)
    return img.convert(mode)


def _save(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


sizes = st.tuples(st.integers(1, 320), st.integers(1, 320))


@st.composite
def accepted_images(draw: st.DrawFn) -> Encoded:
    """Every format and mode we promise, any size, any EXIF orientation (even invalid ones)."""
    fmt = draw(st.sampled_from(sorted(_ACCEPTED_MODES)))
    mode = draw(st.sampled_from(_ACCEPTED_MODES[fmt]))
    size = draw(sizes if fmt != "MPO" else st.tuples(st.integers(8, 320), st.integers(8, 320)))
    img = _pixels(draw(st.integers(0, 2**16)), size, mode)
    orientation = draw(st.sampled_from([1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 9, 65535]))
    options: dict[str, object] = {}
    if orientation != 1 and fmt in ("JPEG", "PNG", "WEBP"):
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif.tobytes()
    if fmt == "MPO":
        options.update(save_all=True, append_images=[_pixels(1, size, mode)])
    if fmt in ("JPEG", "MPO", "WEBP"):
        options["quality"] = draw(st.integers(30, 95))
    return Encoded(_save(img, fmt, **options), fmt, mode, size, orientation if "exif" in options else 1)


@st.composite
def other_format_images(draw: st.DrawFn, table: dict[str, list[str]] = _OTHER_FORMATS) -> Encoded:
    fmt = draw(st.sampled_from(sorted(table)))
    mode = draw(st.sampled_from(table[fmt]))
    size = draw(st.tuples(st.integers(4, 64), st.integers(4, 64)))
    if fmt == "ICO":
        size = (max(size), max(size))
    img = _pixels(draw(st.integers(0, 2**16)), size, mode)
    return Encoded(_save(img, fmt), fmt, mode, size)


@st.composite
def animations(draw: st.DrawFn) -> Encoded:
    fmt = draw(st.sampled_from(["GIF", "PNG", "WEBP"]))
    size = draw(st.tuples(st.integers(2, 64), st.integers(2, 64)))
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)]  # distinct after lossy coding
    frames = [Image.new("RGB", size, c) for c in draw(st.lists(st.sampled_from(colours), min_size=2, max_size=4,
                                                                unique=True))]
    data = _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return Encoded(data, fmt, "RGB", size)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


@st.composite
def bombs(draw: st.DrawFn) -> bytes:
    """A small file whose header claims more pixels than the cap: PNG IHDR or a patched JPEG SOF."""
    w = draw(st.integers(1, 2**31 - 1))
    h = draw(st.integers(max(1, 50_000_001 // w + 1), 2**31 - 1))
    if draw(st.booleans()):
        w16, h16 = min(w, 65535), min(h, 65535)
        if w16 * h16 <= 50_000_000:
            w16, h16 = 65535, 65535
        jpeg = bytearray(_save(Image.new("RGB", (16, 16)), "JPEG"))
        sof = jpeg.index(b"\xff\xc0")
        jpeg[sof + 5:sof + 9] = struct.pack(">HH", h16, w16)
        return bytes(jpeg)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, draw(st.sampled_from([0, 2, 6])), 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b""))


junk = st.sampled_from([b"<!doctype html><html><body>not a photo</body></html>", b"PK\x03\x04" + b"\0" * 26,
                        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", b"GIF89a", b"\x00" * 16, b"#!/bin/sh\nrm -rf /\n",
                        b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBPVP8 "]) | st.binary(max_size=64)


# --- properties ---------------------------------------------------------------------------------
max_sides = st.sampled_from([None, 1600, 64, 7])


@hsettings(max_examples=examples(150))
@given(accepted_images(), max_sides)
def test_every_accepted_format_mode_and_orientation_decodes_upright(upload: Path, enc: Encoded,
                                                                    max_side: int | None) -> None:
    got = _decode(upload, enc.data, max_side)
    assert isinstance(got, np.ndarray), (EXPECT_ACCEPTED, enc.format, enc.mode, got)
    w, h = enc.size
    upright = (w, h) if enc.orientation not in (5, 6, 7, 8) else (h, w)
    if max_side is None:
        assert got.shape[:2] == (upright[1], upright[0])


@hsettings(max_examples=examples(60))
@given(other_format_images())
def test_formats_we_do_not_take_are_unsupported_not_unreadable(upload: Path, enc: Encoded) -> None:
    got = _decode(upload, enc.data, 1600)
    assert isinstance(got, ImageError) and got.code == EXPECT_OTHER_FORMAT, (enc.format, enc.mode, got)


@hsettings(max_examples=examples(20))
@given(other_format_images(_UNOPENABLE_FORMATS))
def test_documents_pillow_cannot_open_are_unreadable(upload: Path, enc: Encoded) -> None:
    got = _decode(upload, enc.data, 1600)
    assert isinstance(got, ImageError) and got.code == "unreadable", (enc.format, got)


@hsettings(max_examples=examples(40))
@given(animations())
def test_animations_stay_refused(upload: Path, enc: Encoded) -> None:
    got = _decode(upload, enc.data, 1600)
    assert isinstance(got, ImageError) and got.code == EXPECT_ANIMATED and "animated" in got.message, enc.format


@hsettings(max_examples=examples(80))
@given(bombs())
def test_decompression_bombs_are_refused_from_the_header_in_bounded_memory(upload: Path, data: bytes) -> None:
    got = _decode(upload, data, 1600)
    assert isinstance(got, ImageError) and got.code == EXPECT_BOMB


@hsettings(max_examples=examples(120))
@given(accepted_images(), st.floats(0.0, 1.0, exclude_max=True))
def test_a_truncated_file_is_refused_or_decodes_to_the_whole_files_pixels(upload: Path, enc: Encoded,
                                                                         keep: float) -> None:
    whole = _decode(upload, enc.data, None)
    assert isinstance(whole, np.ndarray)
    cut = _decode(upload, enc.data[: int(len(enc.data) * keep)], None)
    if isinstance(cut, ImageError):
        assert cut.code == "unreadable", EXPECT_TRUNCATED
    else:
        assert np.array_equal(cut, whole), EXPECT_TRUNCATED


@hsettings(max_examples=examples(80))
@given(accepted_images(), junk)
def test_polyglots_an_image_with_junk_after_it_is_the_image(upload: Path, enc: Encoded, tail: bytes) -> None:
    whole = _decode(upload, enc.data, None)
    got = _decode(upload, enc.data + tail, None)
    assert isinstance(got, np.ndarray) and np.array_equal(got, whole)


@hsettings(max_examples=examples(80))
@given(junk, accepted_images())
@example(b"<!doctype html><html><body>not a photo</body></html>", Encoded(b"", "JPEG", "RGB", (1, 1)))
@example(b"GIF89a", Encoded(b"RIFFB\x00\x00\x00WEBPVP8 ", "WEBP", "RGB", (1, 9)))  # found by the long run:
def test_polyglots_junk_before_an_image_is_not_a_photo(upload: Path, head: bytes, enc: Encoded) -> None:
    """(The long run found "GIF89a" + a WebP: a GIF header claiming 18770x17990 pixels, once
    reported as too_large; a format we do not take is now said first: unsupported_format.)"""
    data = head + enc.data
    got = _decode(upload, data, 1600)
    if isinstance(got, ImageError):
        assert got.code in EXPECT_JUNK | {"too_large"}  # a real header may claim any size
    else:  # the junk happened to be a prefix the format allows (e.g. empty, or the format's magic)
        assert data.startswith(enc.data[:2]) or not head


@hsettings(max_examples=examples(150))
@given(st.binary(max_size=2048))
@example(b"")
@example(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
@example(b"II*\x00" + b"\x00" * 8)
def test_random_bytes_are_refused_with_a_decode_code(upload: Path, data: bytes) -> None:
    got = _decode(upload, data, 1600)
    if isinstance(got, ImageError):
        assert got.code in EXPECT_JUNK | {"too_large"}

"""Defended decoding: caps before pixels, EXIF first, every odd mode comes out RGB uint8."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from handlers.images import (
    ImageError,
    ImageLimits,
    decode_image,
    load_image,
    probe_image,
)
from processor.devkit import samples


@pytest.fixture(scope="module")
def photo(sample_sources) -> Image.Image:
    return Image.open(sample_sources.path("obama.jpg")).convert("RGB")


def test_exif_orientation_is_applied_before_anything_else(tmp_path, photo):
    path = samples.write_exif_rotated(photo, tmp_path / "phone.jpg", orientation=6)
    with Image.open(path) as raw:
        assert raw.size == (photo.height, photo.width)  # stored sideways
    info = probe_image(path)
    assert (info.width, info.height, info.orientation) == (photo.width, photo.height, 6)
    arr = load_image(path)
    assert arr.shape == (photo.height, photo.width, 3)
    assert np.abs(arr.astype(int) - np.asarray(photo, dtype=int)).mean() < 4


@pytest.mark.parametrize("mode", ["CMYK", "P", "RGBA", "LA", "L"])
def test_cmyk_palette_alpha_and_grey_images_become_rgb_uint8(tmp_path, photo, mode):
    img = photo.convert(mode)
    path = tmp_path / f"x-{mode}.{'jpg' if mode in ('CMYK', 'L') else 'png'}"
    img.save(path)
    arr = load_image(path)
    assert arr.dtype == np.uint8 and arr.shape == (photo.height, photo.width, 3)
    assert np.abs(arr.astype(int).mean() - np.asarray(photo).mean()) < 12


def test_transparent_pixels_are_composited_on_white(tmp_path):
    img = Image.new("RGBA", (600, 600), (0, 0, 0, 0))
    img.save(tmp_path / "clear.png")
    assert (load_image(tmp_path / "clear.png") == 255).all()


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    ramp = (np.linspace(0, 65535, 600 * 600).reshape(600, 600)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    arr = load_image(tmp_path / "deep.png")
    assert arr[0, 0, 0] == 0 and arr[-1, -1, 0] == 255 and 120 <= arr[300, 300, 0] <= 135


def test_pixel_bomb_header_is_refused_without_decoding(tmp_path):
    path = samples.write_png_bomb_header(tmp_path / "bomb.png")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageError) as exc:
        load_image(path)
    assert exc.value.code == "too_large"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # < 100 MB


def test_pixel_cap_applies_below_pillows_own_bomb_limit(tmp_path):
    path = samples.write_png_bomb_header(tmp_path / "big.png", 8000, 7000)  # 56 MP
    with pytest.raises(ImageError) as exc:
        probe_image(path)
    assert exc.value.code == "too_large"


def test_file_size_cap_is_checked_first(tmp_path, sample_sources):
    path = tmp_path / "x.jpg"
    path.write_bytes(sample_sources.path("obama.jpg").read_bytes())
    with pytest.raises(ImageError) as exc:
        load_image(path, ImageLimits(max_bytes=1000))
    assert exc.value.code == "too_large"


@pytest.mark.parametrize("content,code", [
    (b"", "unreadable"),
    (b"<html><body>not a photo</body></html>", "unreadable"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "unreadable"),  # a HEIC header, no picture
])
def test_non_images_and_undecodable_formats_get_their_codes(tmp_path, content, code):
    (tmp_path / "x.jpg").write_bytes(content)
    with pytest.raises(ImageError) as exc:
        load_image(tmp_path / "x.jpg")
    assert exc.value.code == code


def test_truncated_jpeg_is_unreadable(tmp_path, sample_sources):
    path = samples.write_truncated(sample_sources.path("obama.jpg"), tmp_path / "cut.jpg", 0.5)
    with pytest.raises(ImageError) as exc:
        load_image(path)
    assert exc.value.code == "unreadable"


@pytest.mark.parametrize("name", ["animation.gif", "multipage.tif"])
def test_gif_and_tiff_are_unsupported(sample_sources, name):
    with pytest.raises(ImageError) as exc:
        load_image(sample_sources.path(name))
    assert exc.value.code == "unsupported_format"


def test_big_jpeg_decodes_reduced_with_the_scale_to_original_pixels(tmp_path, photo):
    big = photo.resize((photo.width * 4, photo.height * 4))
    big.save(tmp_path / "big.jpg", quality=90)
    d = decode_image(tmp_path / "big.jpg", max_side=1000)
    assert max(d.pixels.shape[:2]) == 1000
    assert (d.info.width, d.info.height) == big.size
    assert d.scale == pytest.approx(1000 / max(big.size), rel=0.01)


def test_load_image_returns_full_size_without_max_side(sample_sources):
    arr = load_image(Path(sample_sources.path("obama3.jpg")))
    assert arr.shape == (2333, 1434, 3)


# --- issue 15: multi-picture stills, animations, 16-bit memory, never-received files -------
def _mpo(primary: Image.Image, second: Image.Image, path: Path) -> Path:
    primary.save(path, "MPO", save_all=True, append_images=[second], quality=92)
    return path


def test_mpo_multi_picture_jpeg_is_read_as_its_primary_picture(tmp_path, photo):
    path = _mpo(photo, Image.new("RGB", photo.size, (0, 255, 0)), tmp_path / "phone.jpg")
    with Image.open(path) as raw:
        assert raw.format == "MPO" and raw.n_frames == 2  # what phones and cameras write
    info = probe_image(path)
    assert (info.format, info.width, info.height) == ("MPO", photo.width, photo.height)
    arr = load_image(path)
    assert np.abs(arr.astype(int) - np.asarray(photo, dtype=int)).mean() < 4  # not the green frame


def test_mpo_takes_the_fast_reduced_jpeg_decode(tmp_path, photo, monkeypatch):
    big = photo.resize((photo.width * 4, photo.height * 4))
    path = _mpo(big, Image.new("RGB", (160, 120)), tmp_path / "big.mpo")
    drafts: list[tuple[int, int]] = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def recording_draft(self, mode, size):  # type: ignore[no-untyped-def]
        drafts.append(size)
        return real_draft(self, mode, size)
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", recording_draft)
    d = decode_image(path, max_side=1000)
    assert drafts, "an MPO must be decoded reduced by the JPEG decoder, like a JPEG"
    assert max(d.pixels.shape[:2]) == 1000 and (d.info.width, d.info.height) == big.size


@pytest.mark.parametrize("fmt, ext", [("GIF", "gif"), ("PNG", "png"), ("WEBP", "webp")])
def test_truly_animated_files_stay_refused(tmp_path, fmt, ext):
    frames = [Image.new("RGB", (600, 600), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / f"anim.{ext}"
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with pytest.raises(ImageError) as exc:
        load_image(path)
    assert exc.value.code == "unsupported_format" and "animated" in exc.value.message


def test_exif_orientation_is_applied_to_a_reduced_decode_too(tmp_path, photo):
    big = photo.resize((photo.width * 3, photo.height * 3))
    path = samples.write_exif_rotated(big, tmp_path / "phone.jpg", orientation=6)
    d = decode_image(path, max_side=800)
    assert (d.info.width, d.info.height) == big.size
    s = 800 / max(big.size)
    h, w = d.pixels.shape[:2]  # upright, reduced
    assert abs(h - big.height * s) <= 1 and abs(w - big.width * s) <= 1
    expected = np.asarray(big.resize((d.pixels.shape[1], d.pixels.shape[0])), dtype=int)
    assert np.abs(d.pixels.astype(int) - expected).mean() < 6


def test_a_file_that_was_never_received_is_missing_not_unreadable(tmp_path):
    with pytest.raises(ImageError) as exc:
        load_image(tmp_path / "never-sent.jpg")
    assert exc.value.code == "missing"


_PEAK_PROBE = r"""
import re, sys
from pathlib import Path
from handlers.images import decode_image

def hwm():
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024

Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
before = hwm()
side = None if sys.argv[2] == "full" else int(sys.argv[2])
decode_image(Path(sys.argv[1]), max_side=side)
print(hwm() - before)
"""


def _grey16(path: Path, side_w: int, side_h: int) -> Path:
    """A 16-bit greyscale PNG ramp (small on disk)."""
    row = (np.arange(side_w, dtype=np.uint32) * 65535 // (side_w - 1)).astype(np.uint16)
    Image.fromarray(np.ascontiguousarray(np.broadcast_to(row, (side_h, side_w)))).save(path, compress_level=1)
    return path


@pytest.fixture(scope="module")
def grey16_8mp(tmp_path_factory) -> Path:
    """4096x2048 16-bit greyscale PNG: the biggest non-JPEG we decode (8.4 MP)."""
    return _grey16(tmp_path_factory.mktemp("deep") / "grey16.png", 4096, 2048)


@pytest.mark.parametrize("side, bound_mb", [(1600, 100), ("full", 100)])
def test_sixteen_bit_grey_png_decodes_in_bounded_memory(grey16_8mp, side, bound_mb):
    """Peak resident memory (VmHWM) growth of one decode, in a fresh process. Before the fix
    (full-size float64 copies) a 49 MP one peaked at ~1.2 GB; such a PNG is now refused
    (below), and the biggest one taken stays under the worker's 100 MB bound."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _PEAK_PROBE, str(grey16_8mp), str(side)],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2])
    grown_mb = int(out.stdout.strip()) / 2**20
    assert grown_mb < bound_mb, f"decode grew peak memory by {grown_mb:.0f} MB"


def test_a_png_too_big_to_decode_cheaply_is_too_large_and_a_jpeg_that_big_is_not(tmp_path):
    """Only JPEG decodes at a reduced size, so other formats have a lower pixel cap."""
    with pytest.raises(ImageError) as err:
        load_image(_grey16(tmp_path / "big.png", 7000, 7000))
    assert err.value.code == "too_large" and "JPEG" in err.value.message
    Image.new("RGB", (4500, 3000), (90, 120, 150)).save(tmp_path / "big.jpg", quality=80)  # 13.5 MP
    assert load_image(tmp_path / "big.jpg", max_side=1600).shape == (1067, 1600, 3)


@pytest.fixture(scope="module")
def iphone_heics(tmp_path_factory, sample_sources) -> dict[str, Path]:
    """A real photo as iPhones write HEIC: 12 MP (4032x3024 sensor, portrait) and 48 MP
    (8064x6048, "HEIF Max"), stored sideways with the rotation in the container and EXIF."""
    folder = tmp_path_factory.mktemp("heic")
    photo = Image.open(sample_sources.path("obama.jpg"))
    return {mp: samples.write_heic(photo, folder / f"iphone-{mp}mp.heic", size)
            for mp, size in (("12", (3024, 4032)), ("48", (6048, 8064)))}


@pytest.mark.parametrize("mp, bound_mb", [("12", 100), ("48", 240)])
def test_iphone_heic_is_taken_upright_within_its_decode_bound(iphone_heics, sample_sources, mp, bound_mb):
    """12 MP stays under the worker's 100 MB bound; 48 MP under the HEIF decode cap
    (ImageLimits.max_decode_bytes), which it is sized for. Before: unsupported (no decoder) or
    too_large (every non-JPEG over 8.4 MP)."""
    import subprocess
    import sys

    info = probe_image(iphone_heics[mp])
    assert info.format == "HEIF" and info.width < info.height  # upright portrait, as shot
    pixels = load_image(iphone_heics[mp], max_side=1600)
    assert pixels.shape == (1600, 1200, 3)
    upright = np.asarray(Image.open(sample_sources.path("obama.jpg")).convert("RGB").resize((1200, 1600)),
                         dtype=np.float32)
    assert np.abs(pixels.astype(np.float32) - upright).mean() < 8  # the same picture, not turned
    out = subprocess.run([sys.executable, "-c", _PEAK_PROBE, str(iphone_heics[mp]), "1600"],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2])
    grown_mb = int(out.stdout.strip()) / 2**20
    assert grown_mb < bound_mb, f"decode grew peak memory by {grown_mb:.0f} MB"


def test_a_heic_over_its_decode_bytes_is_too_large_from_the_header(iphone_heics):
    with pytest.raises(ImageError) as err:
        probe_image(iphone_heics["48"], ImageLimits(max_decode_bytes=100 * 2**20))
    assert err.value.code == "too_large" and "MB" in err.value.message


def test_sixteen_bit_values_scale_in_bands_exactly_like_one_pass(tmp_path):
    rng = np.random.default_rng(0)
    deep = rng.integers(0, 65536, size=(1300, 700), dtype=np.uint16)  # more rows than one band
    Image.fromarray(deep).save(tmp_path / "noise.png")
    arr = load_image(tmp_path / "noise.png")
    expected = np.clip(deep.astype(np.float64) / 65535.0 * 255.0 + 0.5, 0, 255).astype(np.uint8)
    assert arr.shape == (1300, 700, 3) and (arr[:, :, 0] == arr[:, :, 2]).all()
    assert np.abs(arr[:, :, 0].astype(int) - expected.astype(int)).max() <= 1


def test_a_huge_gif_header_is_an_unsupported_format_first(tmp_path):
    """Found by the fuzz suite's long run: "GIF89a" + other bytes claims 18770x17990 pixels;
    the person is told the format is not taken, not that the file is too big."""
    import struct

    path = tmp_path / "x.jpg"
    path.write_bytes(b"GIF89a" + struct.pack("<HH", 18770, 17990) + b"\x00" * 32)
    with pytest.raises(ImageError) as exc:
        load_image(path)
    assert exc.value.code == "unsupported_format"

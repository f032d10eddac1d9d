"""Defended decoding: caps before pixels, EXIF first, every odd mode comes out RGB uint8."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "unsupported_format"),
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

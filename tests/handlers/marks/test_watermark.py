"""The invisible mark: read back from real photos after the delivery encode and a quality-75
re-encode, absent from unmarked images, and invisible (PSNR)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from handlers.marks import reencode, save_marked_jpeg
from handlers.marks.watermark import MAX_BIT_ERRORS, PAYLOAD_BITS, embed, read

# the delivery sizes: the square, the portrait, and the tiny model's square and portrait
SIZES = [(1024, 1024), (896, 1120), (128, 128), (112, 140)]


@pytest.fixture(scope="module")
def photos(sample_sources) -> list[Image.Image]:  # noqa: ANN001
    return [Image.open(sample_sources.path(name)).convert("RGB")
            for name in ("obama.jpg", "biden.jpg", "grace_hopper.jpg", "astronaut.png")]


def _delivered(image: Image.Image) -> np.ndarray:
    """What a person downloads: marked and saved as delivery saves it, decoded again."""
    buffer = io.BytesIO()
    save_marked_jpeg(image, buffer, quality=95, optimize=True, progressive=True)
    with Image.open(io.BytesIO(buffer.getvalue())) as img:
        return np.asarray(img.convert("RGB"))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_mark_survives_the_delivery_encode_and_a_quality_75_re_encode(photos, size) -> None:  # noqa: ANN001
    for photo in photos:
        delivered = _delivered(photo.resize(size, Image.Resampling.LANCZOS))
        as_delivered, reencoded = read(delivered), read(reencode(delivered, 75))
        assert as_delivered.found and as_delivered.bit_errors == 0, size
        assert reencoded.found and reencoded.bit_errors <= 1, (size, reencoded)


def test_an_unmarked_photo_reads_as_chance_and_is_not_found(photos) -> None:  # noqa: ANN001
    for photo in photos:
        for size in SIZES:
            reading = read(np.asarray(photo.resize(size)))
            assert not reading.found and reading.bit_errors > MAX_BIT_ERRORS, (size, reading)


def test_the_mark_is_invisible_about_one_grey_level(photos) -> None:  # noqa: ANN001
    original = np.asarray(photos[0].resize((1024, 1024)))
    marked = embed(original)
    mse = np.mean((marked.astype(float) - original) ** 2)
    assert 10 * np.log10(255**2 / mse) > 45  # PSNR in dB
    assert np.abs(marked.astype(int) - original).max() <= 8


def test_a_resized_copy_loses_the_mark_as_documented(photos) -> None:  # noqa: ANN001
    delivered = _delivered(photos[0].resize((1024, 1024)))
    assert not read(np.asarray(Image.fromarray(delivered).resize((1000, 1000)))).found


def test_an_image_too_small_for_a_block_has_no_carriers() -> None:
    tiny = np.zeros((7, 7, 3), dtype=np.uint8)
    assert np.array_equal(embed(tiny), tiny)
    reading = read(tiny)
    assert reading.carriers == 0 and not reading.found and reading.bits == PAYLOAD_BITS

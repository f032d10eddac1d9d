"""Delivery formats: the canvas a job generates on and where each format is cut from it."""

from __future__ import annotations

import pytest
from PIL import Image

from handlers.crops import (
    FACE_CENTRE,
    FORMATS,
    PORTRAIT,
    SQUARE,
    canvas_formats,
    canvas_size,
    cut,
    cut_box,
    normalize_formats,
    output_size,
    square_side,
)
from processor.settings import DELIVERY_FORMATS


def test_squares_only_generate_at_the_resolution_and_portraits_on_sdxls_896x1152_bucket() -> None:
    assert canvas_size(1024, (SQUARE,)) == (1024, 1024)
    assert canvas_size(1024, (SQUARE, PORTRAIT)) == (896, 1152)
    assert canvas_size(128, (SQUARE, PORTRAIT)) == (112, 144)  # the tiny model's
    for resolution in range(64, 2049, 8):
        width, height = canvas_size(resolution, (SQUARE, PORTRAIT))
        assert width % 8 == 0 and height % 8 == 0 and height > width
        assert square_side((width, height)) == resolution  # delivery recovers the resolution


def test_the_square_is_1024_and_the_portrait_4_to_5_at_its_native_896x1120() -> None:
    portrait_canvas = (896, 1152)
    assert output_size(portrait_canvas, SQUARE) == (1024, 1024)
    assert output_size(portrait_canvas, PORTRAIT) == (896, 1120)
    assert output_size((1024, 1024), SQUARE) == (1024, 1024)
    assert canvas_formats(portrait_canvas) == (SQUARE, PORTRAIT)
    assert canvas_formats((1024, 1024)) == (SQUARE,)


def test_each_cut_puts_the_face_centre_at_40_percent_down_and_stays_inside_the_canvas() -> None:
    canvas = (896, 1152)
    face = (350, 400, 200, 240)  # centre (450, 520)
    left, top, right, bottom = cut_box(canvas, SQUARE, face)
    assert (left, right) == (0, 896) and bottom - top == 896
    assert top + FACE_CENTRE[1] * 896 == pytest.approx(520, abs=1)
    # a face near the top: the cut cannot go above the canvas
    assert cut_box(canvas, SQUARE, (350, 10, 200, 200))[1] == 0
    # near the bottom: nor below it
    assert cut_box(canvas, SQUARE, (350, 1000, 200, 150))[3] == 1152
    # the portrait has only 32 px to move: it moves toward the face
    assert cut_box(canvas, PORTRAIT, (350, 900, 200, 200)) == (0, 32, 896, 1152)
    assert cut_box(canvas, PORTRAIT, (350, 40, 200, 200)) == (0, 0, 896, 1120)


def test_an_image_without_a_detected_face_is_cut_from_its_upper_middle() -> None:
    top = cut_box((896, 1152), SQUARE, None)[1]
    assert 0 < top < (1152 - 896) / 2  # above centre, below the very top


def test_cut_returns_the_delivery_size_and_the_face_pixels_land_where_the_box_says() -> None:
    canvas = Image.new("RGB", (112, 144), (200, 200, 200))
    canvas.paste((255, 0, 0), (40, 40, 72, 72))  # the "face": 32x32, centre (56, 56)
    square = cut(canvas, SQUARE, (40, 40, 32, 32))
    assert square.size == (128, 128)  # 112 px cut, resized to the tiny resolution
    portrait = cut(canvas, PORTRAIT, (40, 40, 32, 32))
    assert portrait.size == (112, 140)
    # the face's centre is 40 % down the square: 0.4 * 128 = 51
    column = [square.getpixel((64, y))[1] for y in range(128)]
    red = [y for y, g in enumerate(column) if g < 100]
    assert abs((red[0] + red[-1]) / 2 - FACE_CENTRE[1] * 128) <= 3


def test_formats_are_normalised_and_every_job_keeps_its_squares() -> None:
    assert normalize_formats(None) == (SQUARE,)
    assert normalize_formats([PORTRAIT, SQUARE]) == (SQUARE, PORTRAIT)
    with pytest.raises(ValueError, match="include 'square'"):
        normalize_formats([PORTRAIT])
    with pytest.raises(ValueError, match="unknown formats"):
        normalize_formats([SQUARE, "panorama"])


def test_the_runtime_and_the_cutter_name_the_same_formats_in_the_same_order() -> None:
    assert tuple(FORMATS) == DELIVERY_FORMATS

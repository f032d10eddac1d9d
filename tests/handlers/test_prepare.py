"""Instance-image preparation: face-centred crops, augmentation, captions, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handlers.prepare import (
    crop_plan,
    Augmentation,
    PrepareConfig,
    PreparedDataset,
    crop_square,
    decode_photo,
    prepare_instance_images,
    render_crop,
)
from tests.fixtures.models import write_scene

RES = 128
BOX = (150, 80, 60, 80)  # x, y, w, h


def face_mask(pixels: np.ndarray) -> np.ndarray:
    """The stand-in face is the only bright, warm region of the scene."""
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    return (r > 205) & (g > 165) & (b > 130) & (b < 215)


def centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


@pytest.fixture()
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    write_scene(path, 400, 300, BOX, seed=3)
    return path


def plain_config(**kw) -> PrepareConfig:
    return PrepareConfig(identifier="wpz", resolution=RES, augment_copies=0, **kw)


def test_plain_crop_centres_the_face_just_above_the_middle_at_the_configured_scale(photo, tmp_path):
    cfg = plain_config()
    ds = prepare_instance_images([photo], [BOX], tmp_path / "out", cfg)
    pixels = np.asarray(Image.open(ds.images[0].path))
    assert pixels.shape == (RES, RES, 3)
    mask = face_mask(pixels)
    side = cfg.crop_scale * max(BOX[2], BOX[3])
    cx, cy = centroid(mask)
    assert cx == pytest.approx(RES / 2, abs=1.0)
    assert cy == pytest.approx(RES / 2 - cfg.face_drop * BOX[3] * RES / side, abs=1.0)
    ys, xs = np.nonzero(mask)
    assert ys.max() - ys.min() + 1 == pytest.approx(BOX[3] * RES / side, abs=2.0)
    assert xs.max() - xs.min() + 1 == pytest.approx(BOX[2] * RES / side, abs=2.0)


def test_every_photo_yields_the_plain_crop_plus_its_augmented_copies_captioned_with_the_identifier(
        photo, tmp_path):
    cfg = PrepareConfig(identifier="wpz", resolution=RES, augment_copies=3)
    ds = prepare_instance_images([photo, photo], [BOX, BOX], tmp_path / "out", cfg)
    assert len(ds.images) == 2 * 4
    assert ds.n_photos == 1  # same file name twice: one distinct photo
    assert {i.caption for i in ds.images} == {"a photo of wpz person"}
    assert ds.class_prompt == "a photo of a person"
    assert [i.augmentation.mirrored for i in ds.images[:4]] == [False, True, False, True]
    assert all(Image.open(i.path).size == (RES, RES) for i in ds.images)


def test_mirrored_copy_without_rotation_or_zoom_is_the_flipped_plain_crop(photo, tmp_path):
    cfg = PrepareConfig(identifier="wpz", resolution=RES, augment_copies=1,
                        max_rotation_deg=0.0, max_scale_change=0.0)
    ds = prepare_instance_images([photo], [BOX], tmp_path / "out", cfg)
    plain, mirrored = (np.asarray(Image.open(i.path)) for i in ds.images)
    assert np.array_equal(mirrored, plain[:, ::-1])


def test_zoomed_copy_enlarges_the_face_and_rotation_keeps_it_centred(photo):
    pixels = decode_photo(photo)
    cx, cy, side = crop_square(BOX, 400, 300, plain_config())
    base = face_mask(render_crop(pixels, (cx, cy), side, RES, Augmentation()))
    zoomed = face_mask(render_crop(pixels, (cx, cy), side, RES, Augmentation(scale=1.2)))
    rotated = face_mask(render_crop(pixels, (cx, cy), side, RES, Augmentation(rotation_deg=8.0)))
    assert zoomed.sum() / base.sum() == pytest.approx(1.2 ** 2, rel=0.08)
    assert rotated.sum() / base.sum() == pytest.approx(1.0, rel=0.05)
    assert np.hypot(*np.subtract(centroid(rotated), centroid(base))) < 2.5


def test_exif_orientation_is_applied_before_the_box_is_used(tmp_path):
    upright = tmp_path / "upright.png"
    write_scene(upright, 300, 400, (100, 150, 60, 80), seed=5)  # portrait as displayed
    raw = Image.open(upright).transpose(Image.Transpose.ROTATE_90)  # stored landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "phone.jpg"
    raw.save(path, exif=exif, quality=95)
    ds = prepare_instance_images([path], [(100, 150, 60, 80)], tmp_path / "out", plain_config())
    cx, _ = centroid(face_mask(np.asarray(Image.open(ds.images[0].path))))
    assert cx == pytest.approx(RES / 2, abs=1.5)


def test_an_iphone_heic_is_cropped_upright_around_the_box(tmp_path):
    """HEIC stored sideways with its rotation (as an iPhone writes it) is prepared like the JPEG."""
    from processor.devkit.samples import write_heic

    upright = tmp_path / "upright.png"
    write_scene(upright, 300, 400, (100, 150, 60, 80), seed=5)
    path = write_heic(Image.open(upright), tmp_path / "IMG_0002.HEIC", quality=90)
    ds = prepare_instance_images([path], [(100, 150, 60, 80)], tmp_path / "out", plain_config())
    cx, _ = centroid(face_mask(np.asarray(Image.open(ds.images[0].path))))
    assert cx == pytest.approx(RES / 2, abs=2.5)


def test_the_crop_plan_is_one_square_of_crop_scale_times_the_face_below_its_centre():
    (x, y, w, h), = crop_plan((100, 50, 60, 80), 400, 300)
    assert w == h == pytest.approx(2.2 * 80)
    assert x + w / 2 == pytest.approx(130) and y + h / 2 == pytest.approx(50 + 40 + 8)
    (x, y, w, h), = crop_plan((0, 0, 50, 50), 400, 300)  # kept inside the photo
    assert x >= 0 and y >= 0 and w == pytest.approx(110)


def test_crop_is_shifted_inside_the_photo_near_its_border_and_shrunk_when_too_big():
    cfg = plain_config()
    cx, cy, side = crop_square((0, 0, 50, 50), 400, 300, cfg)
    assert side == pytest.approx(110) and cx - side / 2 >= 0 and cy - side / 2 >= 0
    cx, cy, side = crop_square((10, 10, 250, 280), 400, 300, cfg)
    assert side == 300 and cy == 150


def test_same_seed_gives_identical_images_and_another_seed_other_augmentations(photo, tmp_path):
    cfg = PrepareConfig(identifier="wpz", resolution=RES, augment_copies=2, seed=7)
    a = prepare_instance_images([photo], [BOX], tmp_path / "a", cfg)
    b = prepare_instance_images([photo], [BOX], tmp_path / "b", cfg)
    c = prepare_instance_images([photo], [BOX], tmp_path / "c",
                                PrepareConfig(identifier="wpz", resolution=RES, augment_copies=2, seed=8))
    assert [i.path.read_bytes() for i in a.images] == [i.path.read_bytes() for i in b.images]
    assert [i.augmentation for i in a.images] != [i.augmentation for i in c.images]


def test_dataset_json_round_trips(photo, tmp_path):
    ds = prepare_instance_images([photo], [BOX], tmp_path / "out",
                                 PrepareConfig(identifier="wpz", resolution=RES, augment_copies=1))
    assert PreparedDataset.load(tmp_path / "out") == ds


def test_photos_and_boxes_must_pair_up(photo, tmp_path):
    with pytest.raises(ValueError, match="face boxes"):
        prepare_instance_images([photo], [], tmp_path / "out", plain_config())

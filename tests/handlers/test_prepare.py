"""Instance-image preparation: face-centred crops at several framings, augmentation, captions,
size conditioning, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handlers.prepare import (
    FRAMINGS,
    Augmentation,
    PrepareConfig,
    PreparedDataset,
    crop_plan,
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


CLOSE_UP = FRAMINGS[0]


def plain_config(**kw) -> PrepareConfig:
    return PrepareConfig(identifier="wpz", resolution=RES, augment_copies=0, **kw)


def test_plain_crop_centres_the_face_just_above_the_middle_at_the_configured_scale(photo, tmp_path):
    cfg = plain_config()
    ds = prepare_instance_images([photo], [BOX], tmp_path / "out", cfg)
    assert ds.images[0].framing == "close-up"
    pixels = np.asarray(Image.open(ds.images[0].path))
    assert pixels.shape == (RES, RES, 3)
    mask = face_mask(pixels)
    side = CLOSE_UP.scale * max(BOX[2], BOX[3])
    cx, cy = centroid(mask)
    assert cx == pytest.approx(RES / 2, abs=1.0)
    assert cy == pytest.approx(RES / 2 - CLOSE_UP.drop * BOX[3] * RES / side, abs=1.0)
    ys, xs = np.nonzero(mask)
    assert ys.max() - ys.min() + 1 == pytest.approx(BOX[3] * RES / side, abs=2.0)
    assert xs.max() - xs.min() + 1 == pytest.approx(BOX[2] * RES / side, abs=2.0)


def test_every_crop_yields_the_plain_crop_plus_its_augmented_copies_captioned_for_its_framing(
        photo, tmp_path):
    cfg = PrepareConfig(identifier="wpz", resolution=RES, augment_copies=3)
    ds = prepare_instance_images([photo, photo], [BOX, BOX], tmp_path / "out", cfg)
    # the 400x300 photo holds the close-up and the head-and-shoulders crop, not the waist-up one
    assert [i.framing for i in ds.images[:8]] == ["close-up"] * 4 + ["head-and-shoulders"] * 4
    assert len(ds.images) == 2 * 2 * 4
    assert ds.n_photos == 1  # same file name twice: one distinct photo
    assert {i.caption for i in ds.images} == {"a close-up photo of wpz person",
                                              "a head-and-shoulders photo of wpz person"}
    assert ds.class_prompt == "a photo of a person" and ds.instance_prompt == "a photo of wpz person"
    assert all(Image.open(i.path).size == (RES, RES) for i in ds.images)


def test_no_training_image_is_mirrored_by_default(photo, tmp_path):
    """Issue 22: a third of the images were mirrored, which teaches a symmetric face."""
    cfg = PrepareConfig(identifier="wpz", resolution=RES, augment_copies=3)
    ds = prepare_instance_images([photo], [BOX], tmp_path / "out", cfg)
    assert not any(i.augmentation.mirrored for i in ds.images)
    still = PrepareConfig(identifier="wpz", resolution=RES, augment_copies=1, max_rotation_deg=0.0,
                          max_scale_change=0.0)  # the copy then shows exactly the plain crop's pixels
    plain, copy = (np.asarray(Image.open(i.path)) for i in
                   prepare_instance_images([photo], [BOX], tmp_path / "still", still).images[:2])
    assert np.array_equal(copy, plain) and not np.array_equal(copy, plain[:, ::-1])


def test_mirroring_stays_an_option_and_mirrors_the_plain_crop(photo, tmp_path):
    cfg = PrepareConfig(identifier="wpz", resolution=RES, augment_copies=1, mirror=True,
                        max_rotation_deg=0.0, max_scale_change=0.0)
    ds = prepare_instance_images([photo], [BOX], tmp_path / "out", cfg)
    plain, mirrored = (np.asarray(Image.open(i.path)) for i in ds.images[:2])
    assert ds.images[1].augmentation.mirrored and np.array_equal(mirrored, plain[:, ::-1])


def test_size_conditioning_is_each_crops_true_size_and_place_in_the_photo(photo, tmp_path):
    """Issue 22: SDXL's original_size was the training resolution, even for an upsampled crop."""
    cfg = PrepareConfig(identifier="wpz", resolution=RES, augment_copies=1, max_rotation_deg=0.0,
                        max_scale_change=0.0)
    ds = prepare_instance_images([photo], [BOX], tmp_path / "out", cfg)
    plan = crop_plan(BOX, 400, 300)
    for image, crop in zip(ds.images[::2], plan, strict=True):
        assert image.framing == crop.framing
        assert image.original_size == (round(crop.h), round(crop.w)) != (RES, RES)
        assert image.crop_top_left == (round(crop.y), round(crop.x))
        assert image.size_conditioning(RES) == (*image.original_size, *image.crop_top_left)
    # a zoomed copy shows less of the photo: its conditioning says so
    zoomed = prepare_instance_images([photo], [BOX], tmp_path / "z", PrepareConfig(
        identifier="wpz", resolution=RES, augment_copies=1, max_rotation_deg=6.0, seed=1)).images[1]
    assert zoomed.augmentation.scale > 1 and zoomed.original_size[0] == round(plan[0].w / zoomed.augmentation.scale)


def test_a_rotated_copy_samples_only_the_photo_never_a_reflected_border(tmp_path):
    """A face at the photo's edge: the copy zooms in rather than invent pixels past the edge."""
    path = tmp_path / "edge.png"
    write_scene(path, 200, 200, (0, 40, 60, 80), seed=4)
    cfg = PrepareConfig(identifier="wpz", resolution=RES, augment_copies=4, max_scale_change=0.0)
    ds = prepare_instance_images([path], [(0, 40, 60, 80)], tmp_path / "out", cfg)
    crop = crop_plan((0, 40, 60, 80), 200, 200)[0]
    for image in ds.images[1:5]:
        aug = image.augmentation
        theta = np.radians(abs(aug.rotation_deg))
        half = crop.w / aug.scale * (np.cos(theta) + np.sin(theta)) / 2
        cx, cy = crop.centre
        assert cx - half >= -1e-6 and cy - half >= -1e-6 and cx + half <= 200 + 1e-6 and cy + half <= 200 + 1e-6


def test_zoomed_copy_enlarges_the_face_and_rotation_keeps_it_centred(photo):
    pixels = decode_photo(photo)
    crop = crop_plan(BOX, 400, 300)[0]
    (cx, cy), side = crop.centre, crop.w
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


def test_the_crop_plan_frames_close_up_head_and_shoulders_and_waist_up_where_the_photo_holds_them():
    plan = crop_plan((400, 200, 100, 100), 1000, 1200)
    assert [c.framing for c in plan] == ["close-up", "head-and-shoulders", "waist-up"]
    for crop, framing in zip(plan, FRAMINGS, strict=True):
        assert crop.w == crop.h == pytest.approx(framing.scale * 100)
        assert crop.x >= 0 and crop.y >= 0 and crop.x + crop.w <= 1000 and crop.y + crop.h <= 1200
    assert plan[0].centre == pytest.approx((450, 250 + 10))
    assert plan[2].centre[1] > plan[1].centre[1] > plan[0].centre[1]  # wider framings reach down
    # a tight photo: only the close-up, kept inside the photo; nothing is padded
    (only,) = crop_plan((100, 50, 60, 80), 300, 220)
    assert only.framing == "close-up" and only.w == pytest.approx(2.2 * 80)
    assert only.x + only.w / 2 == pytest.approx(130) and only.y + only.h / 2 == pytest.approx(50 + 40 + 8)
    # a face at the top edge: a wider square inside the photo would put the face at its edge, so none
    assert [c.framing for c in crop_plan((450, 0, 100, 100), 1000, 1200)] == ["close-up"]


def test_crop_is_shifted_inside_the_photo_near_its_border_and_shrunk_when_too_big():
    crop = crop_plan((0, 0, 50, 50), 400, 300)[0]
    assert crop.w == pytest.approx(110) and crop.x >= 0 and crop.y >= 0
    crop = crop_plan((10, 10, 250, 280), 400, 300)[0]
    assert crop.w == 300 and crop.centre[1] == 150


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

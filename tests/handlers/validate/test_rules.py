"""The gate's pure set-level rules: identity grouping, training-photo choice, messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from handlers.validate.gate import PhotoResult, select_training_photos
from handlers.validate.identity import group_identities
from handlers.validate.messages import ADVICE, REASON_ORDER, photo_message, set_message


def _people(sizes: list[int], seed: int = 0, spread: float = 0.05) -> list[np.ndarray]:
    """Clusters of unit vectors around random, well-separated centres."""
    rng = np.random.default_rng(seed)
    out = []
    for size in sizes:
        centre = rng.normal(size=128)
        for _ in range(size):
            out.append(centre / np.linalg.norm(centre) + rng.normal(scale=spread / 11, size=128))
    return out


def test_majority_person_is_kept_and_the_minority_flagged():
    g = group_identities(_people([9, 3]), threshold=0.09)
    assert g.majority == tuple(range(9)) and g.others == (9, 10, 11) and not g.conflict
    assert max(g.distances[:9]) < 0.09 < min(g.distances[9:])


def test_two_people_half_and_half_is_a_conflict():
    assert group_identities(_people([6, 6]), threshold=0.09).conflict


def test_seven_and_five_is_a_conflict_but_ten_and_two_is_not():
    assert group_identities(_people([7, 5]), threshold=0.09).conflict
    assert not group_identities(_people([10, 2]), threshold=0.09).conflict


def test_a_single_face_is_its_own_majority():
    g = group_identities(_people([1]), threshold=0.09)
    assert g.majority == (0,) and not g.conflict


def _ok(i: int, quality: float, yaw: float | None) -> PhotoResult:
    return PhotoResult(file=f"p{i:02d}.jpg", path=Path(f"p{i:02d}.jpg"), ok=True,
                       quality=quality, pose_yaw=yaw)


def test_at_most_twenty_are_chosen_and_every_pose_keeps_a_place():
    frontal = [_ok(i, 3.0 - i * 0.01, 0.0) for i in range(22)]
    turned = [_ok(30, 1.0, -0.6), _ok(31, 0.9, 0.7)]
    chosen = select_training_photos(frontal + turned, 20)
    assert len(chosen) == 20
    names = {r.file for r in chosen}
    assert {"p30.jpg", "p31.jpg"} <= names  # low quality but the only turned heads
    assert "p21.jpg" not in names and "p20.jpg" not in names  # worst frontal ones dropped


def test_twenty_or_fewer_usable_photos_are_all_chosen():
    photos = [_ok(i, 1.0, None) for i in range(12)]
    assert select_training_photos(photos, 20) == photos


def test_every_reason_code_has_advice_with_something_to_do():
    assert set(ADVICE) == set(REASON_ORDER)
    assert "window" in ADVICE["too_dark"] and "Crop it to just you" in ADVICE["multiple_faces"]
    assert photo_message("duplicate", "a.jpg").startswith("This is the same shot as a.jpg.")


def test_set_message_counts_the_photos_still_needed():
    assert "add 3 more good photos" in set_message(False, 7, 3, 10, False, 7, 0)
    assert "more than one person (6 of one person and 6 of another)" in set_message(
        False, 6, 4, 10, True, 6, 6)

"""Held-out photos: the most typical two of twelve or more, never the most turned; none below."""

from __future__ import annotations

from handlers.holdout import PhotoStats, choose_held_out


def _set(n: int) -> list[PhotoStats]:
    # distance to the set's centroid grows with i; odd photos are turned far
    return [PhotoStats(f"p{i:02d}.jpg", 0.01 + 0.002 * i, 0.6 if i % 2 else 0.05) for i in range(n)]


def test_twelve_usable_photos_hold_out_the_two_most_typical_frontal_ones() -> None:
    split = choose_held_out(_set(12))
    assert split.held_out == ("p00.jpg", "p02.jpg")  # p01 is closer than p02 but turned away
    assert len(split.training) == 10 and not set(split.held_out) & set(split.training)
    assert split.to_dict()["count"] == 2 and split.reason is None


def test_the_closest_photo_is_not_held_out_when_it_is_the_sets_most_unusual_pose() -> None:
    photos = _set(12)
    photos[5] = PhotoStats("p05.jpg", 0.0, 0.9)  # nearest the centroid, but the most turned
    assert "p05.jpg" not in choose_held_out(photos).held_out


def test_fewer_than_twelve_usable_photos_hold_nothing_out_and_say_why() -> None:
    split = choose_held_out(_set(11))
    assert split.held_out == () and len(split.training) == 11
    record = split.to_dict()
    assert record["count"] == 0 and "11 usable photos" in record["reason"]


def test_the_choice_does_not_depend_on_the_order_of_the_photos() -> None:
    forward, backward = choose_held_out(_set(14)), choose_held_out(list(reversed(_set(14))))
    assert set(forward.held_out) == set(backward.held_out) == {"p00.jpg", "p02.jpg"}

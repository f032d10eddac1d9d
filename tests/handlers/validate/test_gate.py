"""The quality gate on real photos: every reason code, the set rules, the report shape."""

from __future__ import annotations

import pytest

from handlers.validate.config import ValidateConfig
from handlers.validate.gate import validate_photos
from handlers.validate.messages import ADVICE, REASON_ORDER

ALL_CODES = set(REASON_ORDER)


def test_labelled_set_covers_every_reason_code(labelled_set):
    assert set(labelled_set.expected.values()) - {None} == ALL_CODES


@pytest.mark.parametrize("code", REASON_ORDER)
def test_each_defect_is_reported_with_its_reason_code(labelled_set, labelled_report, code):
    got = {p.file: p.reason for p in labelled_report.photos}
    files = [f for f, c in labelled_set.expected.items() if c == code]
    assert files
    for f in files:
        assert got[f] == code, (f, labelled_report.photos[[p.file for p in labelled_report.photos].index(f)])


def test_good_photos_pass_and_the_set_of_ten_is_accepted(labelled_set, labelled_report):
    ok = sorted(p.file for p in labelled_report.photos if p.ok)
    assert ok == sorted(f for f, c in labelled_set.expected.items() if c is None)
    assert labelled_report.usable == 10 and labelled_report.accepted
    assert sorted(p.name for p in labelled_report.selected) == ok


def test_rejected_photos_carry_plain_advice_and_good_ones_a_short_note(labelled_report):
    for p in labelled_report.photos:
        assert p.ok == (p.reason is None)
        if p.reason:
            assert p.message.startswith(ADVICE[p.reason].split(" another of your photos")[0])
        else:
            assert p.message == "Good photo."
    dup = next(p for p in labelled_report.photos if p.reason == "duplicate")
    assert dup.duplicate_of == "a-obama-01.jpg" and "a-obama-01.jpg" in dup.message


def test_measurements_are_recorded_for_photos_with_a_face(labelled_report):
    for p in labelled_report.photos:
        if p.ok:
            x, y, w, h = p.face_box
            assert 0 <= x < p.width and 0 <= y < p.height and w > 0 and h > 0
            assert p.sharpness > 0 and 0 < p.exposure < 255
            assert p.identity_distance is not None and p.identity_distance < 0.09
            assert p.embedding is not None and p.embedding.dtype.name == "float32"


def test_report_to_dict_has_the_cli_json_shape_without_embeddings(labelled_report):
    d = labelled_report.to_dict()
    assert list(d)[:3] == ["accepted", "photos", "usable"]
    for p in d["photos"]:
        assert list(p)[:4] == ["file", "ok", "reason", "message"]
        assert "embedding" not in p
    assert d["selected"] == [p.name for p in labelled_report.selected]


def test_twelve_photos_of_one_person_are_accepted(people, face_analyzer):
    report = validate_photos(people.obama[:12], ValidateConfig(), face_analyzer)
    assert report.accepted and report.usable == 12 and not report.identity_conflict
    assert [p.reason for p in report.photos] == [None] * 12


def test_swapping_in_three_photos_of_another_person_flags_exactly_those(people, face_analyzer):
    photos = people.obama[:9] + people.biden[:3]
    report = validate_photos(photos, ValidateConfig(), face_analyzer)
    flagged = [p.file for p in report.photos if p.reason == "different_person"]
    assert flagged == [p.name for p in people.biden[:3]]
    assert all(p.ok for p in report.photos[:9])
    # 9 good photos: rejected, and the message says how many more are needed
    assert not report.accepted and report.needed == 1 and "1 more good photo" in report.message


def test_half_and_half_two_people_is_rejected_and_says_so(people, face_analyzer):
    photos = people.obama[:6] + people.biden[:6]
    report = validate_photos(photos, ValidateConfig(min_usable=6), face_analyzer)
    assert report.identity_conflict and not report.accepted
    assert "more than one person" in report.message
    assert sum(p.reason == "different_person" for p in report.photos) == 6
    assert report.selected == []


def test_the_verdict_is_deterministic(labelled_set, labelled_report, face_analyzer):
    again = validate_photos(labelled_set.paths(), ValidateConfig(), face_analyzer)
    strip = lambda d: [{k: v for k, v in p.items()} for p in d["photos"]]  # noqa: E731
    assert strip(again.to_dict()) == strip(labelled_report.to_dict())

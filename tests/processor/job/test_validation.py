"""The gate's report as the runtime keeps it: checkpoint round trip, status view, training set."""

from __future__ import annotations

from pathlib import Path

from handlers.validate.gate import PhotoResult, ValidationReport
from processor.job.validation import ValidationSummary, summarize


def _report(tmp: Path) -> ValidationReport:
    good = PhotoResult(file="a.jpg", path=tmp / "a.jpg", ok=True, face_box=(10, 20, 30, 40),
                       sharpness=512.123456, selected=True)
    spare = PhotoResult(file="b.jpg", path=tmp / "b.jpg", ok=True, face_box=(1, 2, 3, 4))
    bad = PhotoResult(file="c.jpg", path=tmp / "c.jpg", ok=False, reason="blurry",
                      message="This photo is blurry.")
    return ValidationReport(accepted=True, photos=[good, spare, bad], usable=2, needed=8,
                            selected=[tmp / "a.jpg"], identity_conflict=False, message="ok",
                            thresholds={})


def test_training_set_is_the_gates_selection_with_its_face_boxes(tmp_path: Path) -> None:
    summary = summarize(_report(tmp_path), required=10)
    assert summary.accepted_files == ("a.jpg",) and summary.boxes == ((10, 20, 30, 40),)
    assert summary.problem is None and summary.required == 10


def test_checkpoint_form_round_trips(tmp_path: Path) -> None:
    summary = summarize(_report(tmp_path), required=10)
    assert ValidationSummary.from_dict(summary.to_dict()) == summary


def test_status_form_has_verdicts_and_numbers_but_no_local_paths(tmp_path: Path) -> None:
    public = summarize(_report(tmp_path), required=10).public_dict()
    assert [p["file"] for p in public["photos"]] == ["a.jpg", "b.jpg", "c.jpg"]
    assert public["photos"][2]["reason"] == "blurry" and public["photos"][0]["sharpness"] == 512.1235
    assert str(tmp_path) not in repr(public)

"""``headshots eval RESULTS_DIR --photos DIR`` on a results folder built by the real deliver step."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handlers.deliver import build_deliverables
from handlers.generate.config import GenerateConfig
from handlers.generate.loop import ImageRequest, generate_and_select
from handlers.generate.prompts import load_prompt_set
from handlers.generate.select import SelectConfig
from processor.cli import main


class Photos:
    """Image source handing back the given photos in order (stand-ins for generated images)."""

    def __init__(self, images: list[np.ndarray]) -> None:
        self.images = images

    def generate_images(self, requests: Sequence[ImageRequest]) -> list[np.ndarray]:
        return [self.images[r.prompt_index] for r in requests]


@pytest.fixture(scope="module")
def job_dirs(tmp_path_factory: pytest.TempPathFactory, selection_photos, face_analyzer,
             reference_embeddings) -> tuple[Path, Path]:
    p = selection_photos
    root = tmp_path_factory.mktemp("eval")
    images = [p.shots[0], p.shots[1], p.strangers["biden"]]
    # scored in report mode, as the service does: each record keeps its face box, and delivery
    # cuts the square around it
    selection = generate_and_select(Photos(images), load_prompt_set(), "sks", reference_embeddings, root / "gen",
                                    GenerateConfig(num_images=3, pool_size=3, resolution=128), SelectConfig(mode="report"),
                                    analyzer=face_analyzer)
    results = build_deliverables(selection, root / "results").out_dir
    photos = root / "photos"
    photos.mkdir()
    for i, img in enumerate(p.references):
        Image.fromarray(img).save(photos / f"me-{i}.jpg", quality=92)
    (photos / "notes.txt").write_text("not a photo")
    return results, photos


def test_eval_prints_identity_diversity_and_faces_as_json(job_dirs, capsys, monkeypatch) -> None:
    results, photos = job_dirs
    monkeypatch.setenv("HEADSHOTS_EVAL_CLIP_MODEL", str(results / "no-clip-here"))
    rc = main(["eval", str(results), "--photos", str(photos), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["headshots"] == 3 and report["photos"] == 6
    assert report["faces_found"]["exactly_one"] == 3
    assert report["identity_similarity"]["pass_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["diversity"]["face"]["count"] == 3 and report["diversity"]["pixel"]["count"] == 3
    assert "no-clip-here" in report["skipped"]["clip"]


def test_eval_prints_readable_lines_by_default(job_dirs, capsys) -> None:
    results, photos = job_dirs
    assert main(["eval", str(results), "--photos", str(photos), "--threshold", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "headshots: 3" in out and "pairwise diversity (pixel)" in out
    assert "pass >= 0.5: 100%" in out  # --threshold moves the pass line: the stranger passes too


def test_eval_without_faces_still_reports_pixel_diversity(job_dirs, capsys) -> None:
    results, photos = job_dirs
    assert main(["eval", str(results), "--photos", str(photos), "--no-faces"]) == 0
    out = capsys.readouterr().out
    assert "skipped faces" in out and "identity similarity" not in out


def test_eval_fails_cleanly_on_an_empty_results_folder(tmp_path: Path, job_dirs, capsys) -> None:
    _, photos = job_dirs
    assert main(["eval", str(tmp_path), "--photos", str(photos)]) == 2
    assert "no headshot" in capsys.readouterr().err


# --- the AI-made marks of every delivered file -------------------------------------------------
def test_eval_reads_both_marks_of_every_delivered_jpeg_also_after_a_quality_75_re_encode(job_dirs, capsys) -> None:
    results, _ = job_dirs
    assert main(["eval", str(results), "--json"]) == 0  # without --photos: the marks alone
    marks = json.loads(capsys.readouterr().out)["marks"]
    assert set(marks["files"]) == {"headshot-001.jpg", "headshot-002.jpg", "headshot-003.jpg", "contact-sheet.jpg"}
    assert marks["summary"] == {"files": 4, "xmp": 4, "watermark": 4, "watermark_after_q75": 4, "complete": 4}
    one = marks["files"]["headshot-002.jpg"]
    assert one["xmp"]["digital_source_type"] == "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    assert one["xmp"]["creator_tool"].startswith("headshots ")
    assert one["watermark_after_q75"]["found"] and one["watermark_after_q75"]["bits"] == 48


def test_eval_names_the_file_whose_metadata_was_stripped_and_the_one_never_marked(job_dirs, tmp_path, capsys) -> None:
    import shutil

    results, photos = job_dirs
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    with Image.open(copy / "headshot-001.jpg") as img:  # pixels kept, metadata gone
        img.convert("RGB").save(copy / "headshot-001.jpg", quality=95)
    with Image.open(copy / "headshot-002.jpg") as img:  # a picture that never had marks
        Image.fromarray(np.asarray(img.convert("RGB"))[::-1].copy()).save(copy / "headshot-002.jpg", quality=95)
    assert main(["eval", str(copy), "--photos", str(photos), "--no-faces"]) == 0
    out = capsys.readouterr().out
    assert "AI-made marks: XMP (trainedAlgorithmicMedia) in 2/4 files, invisible watermark in 3/4, " \
           "after a quality-75 re-encode in 3/4" in out
    assert "headshot-001.jpg: XMP missing; watermark found" in out
    assert "headshot-002.jpg: XMP missing; watermark NOT found" in out
    assert "headshot-003.jpg: XMP AI-made by headshots" in out


def _with_held_out(results: Path, dest: Path, record: dict) -> Path:
    import shutil

    copy = Path(shutil.copytree(results, dest))
    doc = json.loads((copy / "results.json").read_text())
    doc["summary"]["held_out"] = record
    (copy / "results.json").write_text(json.dumps(doc))
    return copy


def test_eval_reports_identity_against_the_held_out_photos_apart_from_the_selections(
        job_dirs, tmp_path: Path, capsys) -> None:
    results, photos = job_dirs
    held = _with_held_out(results, tmp_path / "held", {"count": 2, "files": ["me-4.jpg", "me-5.jpg"],
                                                       "training_photos": 4, "reason": None})
    assert main(["eval", str(held), "--photos", str(photos), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["photos"] == 4  # the selection's references: the held-out two are not among them
    judge = report["held_out"]
    assert judge["photos"] == ["me-4.jpg", "me-5.jpg"] and judge["count"] == 3  # 3 headshots scored, 2 pass
    assert judge["pass_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert main(["eval", str(held), "--photos", str(photos)]) == 0
    assert "identity vs held-out photos (me-4.jpg, me-5.jpg)" in capsys.readouterr().out


def test_eval_says_plainly_when_nothing_was_held_out(job_dirs, tmp_path: Path, capsys) -> None:
    results, photos = job_dirs
    none = _with_held_out(results, tmp_path / "none", {"count": 0, "files": [], "training_photos": 10,
                                                       "reason": "only 10 usable photos: all of them train"})
    assert main(["eval", str(none), "--photos", str(photos)]) == 0
    out = capsys.readouterr().out
    assert "held-out judge: nothing was held out: only 10 usable photos" in out
    assert main(["eval", str(results), "--photos", str(photos), "--json"]) == 0  # a job from before
    assert "records no held-out photos" in json.loads(capsys.readouterr().out)["held_out"]["note"]

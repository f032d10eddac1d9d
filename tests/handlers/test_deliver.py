"""Delivery artefacts: numbered JPEGs, a contact sheet whose numbers match, zip, results.json."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from handlers.deliver import (
    SHEET_TILE,
    build_deliverables,
    email_preview,
    encode_headshot,
    encoded_paths,
    headshot_name,
    sheet_layout,
    tile_origin,
)
from handlers.generate.image_writer import write_png
from handlers.generate.records import Attempt, ImageRecord, SelectionResult
from handlers.marks import check_marks

# Distinct, far-apart colours: a tile shows which file it came from.
COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 220), (230, 200, 20), (200, 40, 200),
           (20, 210, 210), (120, 70, 20), (250, 140, 0), (90, 90, 90), (0, 120, 60),
           (160, 160, 255), (255, 160, 160)]


def _selection(tmp_path: Path, n: int, requested: int | None = None) -> SelectionResult:
    image_dir = tmp_path / "gen"
    image_dir.mkdir()
    records = []
    attempts = []
    for i in range(n):
        name = f"p{i:03d}-a0.png"
        Image.new("RGB", (128, 128), COLOURS[i % len(COLOURS)]).save(image_dir / name)
        history = ()
        if i == 1:  # prompt 1 needed a regeneration
            history = (Attempt(1, 0, 111, False, "identity", 0.2, 1, 0.5),)
        ok = Attempt(i, len(history), 1000 + i, True, None, 0.03 + i / 1000, 1, 0.5)
        history = history + (ok,)
        attempts.extend(history)
        records.append(ImageRecord(prompt_index=i, prompt=f"prompt {i}", seed=ok.seed,
                                   attempt=ok.attempt, file=name, accepted=True,
                                   distance=ok.distance, history=history))
    attempts.append(Attempt(n, 0, 5, False, "no_face", None, 0, 0.5))  # an abandoned prompt
    return SelectionResult(image_dir=image_dir, records=tuple(records), attempts=tuple(attempts),
                           requested=requested or n, mode="enforce", threshold=0.07,
                           seconds=6.0, generated=len(attempts))


def test_headshots_are_numbered_jpegs_in_record_order(tmp_path: Path) -> None:
    d = build_deliverables(_selection(tmp_path, 3), tmp_path / "out")
    assert [p.name for p in d.headshots] == ["headshot-001.jpg", "headshot-002.jpg", "headshot-003.jpg"]
    for i, path in enumerate(d.headshots):
        with Image.open(path) as img:
            assert img.format == "JPEG"
            pixel = np.asarray(img.convert("RGB"))[64, 64].astype(int)
        assert np.abs(pixel - COLOURS[i]).max() < 12


def test_contact_sheet_tile_k_shows_headshot_k_and_carries_a_label(tmp_path: Path) -> None:
    n = 12
    d = build_deliverables(_selection(tmp_path, n), tmp_path / "out")
    cols, rows = sheet_layout(n)
    assert (cols, rows) == (10, 2)
    with Image.open(d.contact_sheet) as sheet:
        arr = np.asarray(sheet.convert("RGB")).astype(int)
    for k in range(n):
        x, y = tile_origin(k, cols)
        centre = arr[y + SHEET_TILE // 2, x + SHEET_TILE // 2]
        assert np.abs(centre - COLOURS[k]).max() < 16, k
        corner = arr[y + 6: y + 14, x + 6: x + 10]  # inside the black label box
        assert corner.mean() < 60, k
    # a 12-tile, 10-column sheet leaves the rest of row 2 empty (background grey)
    x, y = tile_origin(15, cols)
    assert arr[y + 100, x + 100].min() > 230


def test_zip_holds_every_headshot_and_the_sheet_and_is_reproducible(tmp_path: Path) -> None:
    sel = _selection(tmp_path, 4)
    a = build_deliverables(sel, tmp_path / "a")
    b = build_deliverables(sel, tmp_path / "b")
    with zipfile.ZipFile(a.archive) as zf:
        assert zf.namelist() == [headshot_name(i) for i in range(1, 5)] + ["contact-sheet.jpg"]
        assert zf.read("headshot-002.jpg") == (tmp_path / "a" / "headshot-002.jpg").read_bytes()
    assert a.archive.read_bytes() == b.archive.read_bytes()


def test_results_json_records_prompt_seed_attempt_distance_history_and_summary(tmp_path: Path) -> None:
    d = build_deliverables(_selection(tmp_path, 3, requested=5), tmp_path / "out")
    doc = json.loads(d.results_json.read_text())
    second = doc["images"][1]
    assert second["file"] == "headshot-002.jpg" and second["number"] == 2
    assert second["prompt"] == "prompt 1" and second["seed"] == 1001 and second["attempt"] == 1
    assert second["identity_distance"] == 0.031
    assert [h["accepted"] for h in second["history"]] == [False, True]
    assert second["history"][0]["reason"] == "identity"
    s = doc["summary"]
    assert s["delivered"] == 3 and s["requested"] == 5 and s["shortfall"] == 2
    assert s["attempts"] == 5 and s["regenerations"] == 1 and s["rejected"] == 2
    assert s["acceptance_rate"] == 0.6
    assert s["seconds_per_image"] == 1.2
    assert s["rejections_by_reason"] == {"identity": 1, "no_face": 1}
    assert s["abandoned_prompts"] == [3]
    assert d.summary == s


def test_files_lists_headshots_then_sheet_zip_and_results(tmp_path: Path) -> None:
    d = build_deliverables(_selection(tmp_path, 2), tmp_path / "out")
    assert [p.name for p in d.files()] == ["headshot-001.jpg", "headshot-002.jpg",
                                           "contact-sheet.jpg", "headshots.zip", "results.json"]
    assert all(p.exists() for p in d.files())


def test_an_empty_selection_still_writes_results_json_with_the_shortfall(tmp_path: Path) -> None:
    d = build_deliverables(_selection(tmp_path, 0, requested=50), tmp_path / "out")
    assert d.headshots == () and d.contact_sheet is None and d.archive is None
    assert json.loads(d.results_json.read_text())["summary"]["shortfall"] == 50


def test_images_encoded_ahead_give_byte_identical_deliverables_and_are_not_encoded_again(tmp_path: Path) -> None:
    sel = _selection(tmp_path, 5)
    direct = build_deliverables(sel, tmp_path / "direct", workers=1)
    ahead = tmp_path / "encoded"
    for record in sel.records[:3]:  # the writer thread got through three before the job resumed
        encode_headshot(sel.path(record), ahead)
    stamp = {r.file: encoded_paths(ahead, r.file).jpeg.stat().st_mtime_ns for r in sel.records[:3]}
    mixed = build_deliverables(sel, tmp_path / "mixed", encoded_dir=ahead, workers=4)
    for a, b in zip(direct.files(), mixed.files(), strict=True):
        assert a.name == b.name and a.read_bytes() == b.read_bytes(), a.name
    assert {r.file: encoded_paths(ahead, r.file).jpeg.stat().st_mtime_ns for r in sel.records[:3]} == stamp
    assert all(encoded_paths(ahead, r.file).exists() for r in sel.records)  # the rest encoded now
    assert not list(ahead.glob("*.part"))


def test_encode_headshot_writes_a_progressive_jpeg_and_a_sheet_sized_tile(tmp_path: Path) -> None:
    source = tmp_path / "p000-a0.png"
    Image.new("RGB", (640, 640), COLOURS[0]).save(source)
    out = encode_headshot(source, tmp_path / "enc")
    with Image.open(out.jpeg) as jpeg, Image.open(out.tile) as tile:
        assert jpeg.format == "JPEG" and jpeg.size == (640, 640) and jpeg.info.get("progressive")
        assert tile.size == (SHEET_TILE, SHEET_TILE)
    assert set(out.jpegs) == {"square"}  # a square canvas gives the square alone


# --- portraits ----------------------------------------------------------------------------
FACE = (40, 30, 32, 32)  # where the "face" is on each 112x144 canvas (the tiny model's portrait canvas)


def _portrait_selection(tmp_path: Path, n: int) -> SelectionResult:
    """``n`` portrait canvases, each with a red "face" at FACE, the box stored as the generator does."""
    image_dir = tmp_path / "gen-portrait"
    image_dir.mkdir()
    records = []
    for i in range(n):
        canvas = np.zeros((144, 112, 3), dtype=np.uint8)
        canvas[:] = COLOURS[i % len(COLOURS)]
        x, y, w, h = FACE
        canvas[y:y + h, x:x + w] = (255, 0, 0) if i % 2 else (0, 0, 0)
        name = f"p{i:03d}-a0.png"
        write_png(canvas, image_dir / name, FACE)
        ok = Attempt(i, 0, 1000 + i, True, None, 0.03, 1, 0.5)
        records.append(ImageRecord(i, f"prompt {i}", ok.seed, 0, name, True, 0.03, (ok,), FACE))
    return SelectionResult(image_dir=image_dir, records=tuple(records), attempts=tuple(a for r in records
                                                                                      for a in r.history),
                           requested=n, mode="enforce", threshold=0.07, seconds=1.0, generated=n,
                           extra={"formats": ["square", "portrait"], "width": 112, "height": 144})


def test_a_portrait_job_delivers_the_square_and_the_4_to_5_crop_of_each_image_named_by_format(tmp_path: Path) -> None:
    d = build_deliverables(_portrait_selection(tmp_path, 3), tmp_path / "out")
    assert [p.name for p in d.headshots] == ["headshot-001.jpg", "headshot-002.jpg", "headshot-003.jpg"]
    assert [p.name for p in d.crops] == ["headshot-001-portrait.jpg", "headshot-002-portrait.jpg",
                                         "headshot-003-portrait.jpg"]
    for square, portrait in zip(d.headshots, d.crops, strict=True):
        with Image.open(square) as a, Image.open(portrait) as b:
            assert a.size == (128, 128) and b.size == (112, 140)
    # results.json names every file's format and size; the zip holds each image's crops together
    doc = json.loads(d.results_json.read_text())
    assert [(i["number"], i["file"], i["format"], i["width"], i["height"]) for i in doc["images"][:2]] == [
        (1, "headshot-001.jpg", "square", 128, 128), (1, "headshot-001-portrait.jpg", "portrait", 112, 140)]
    assert doc["images"][1]["seed"] == doc["images"][0]["seed"] and doc["images"][1]["face_box"] == list(FACE)
    assert doc["summary"]["formats"] == ["square", "portrait"]
    with zipfile.ZipFile(d.archive) as zf:
        assert zf.namelist()[:3] == ["headshot-001.jpg", "headshot-001-portrait.jpg", "headshot-002.jpg"]
        assert len(zf.namelist()) == 7
    assert set(d.files()) >= set(d.headshots) | set(d.crops)


def test_each_crop_is_cut_around_the_face_the_generator_recorded(tmp_path: Path) -> None:
    d = build_deliverables(_portrait_selection(tmp_path, 2), tmp_path / "out")
    with Image.open(d.headshots[1]) as square:  # image 2: a red face
        rows = np.asarray(square.convert("RGB")).astype(int)
    red = np.where((rows[:, :, 0] > 200) & (rows[:, :, 1] < 60))[0]
    # face centre at 40 % down the square, as handlers/crops.py places it (not the canvas's centre)
    assert abs((red.min() + red.max()) / 2 - 0.4 * 128) <= 3


def test_a_square_job_still_delivers_one_1024_square_per_image(tmp_path: Path) -> None:
    image_dir = tmp_path / "gen"
    image_dir.mkdir()
    Image.new("RGB", (1024, 1024), COLOURS[2]).save(image_dir / "p000-a0.png")
    record = ImageRecord(0, "p", 1, 0, "p000-a0.png", True, 0.03)
    d = build_deliverables(SelectionResult(image_dir, (record,), (), 1, "enforce", 0.07, 1.0), tmp_path / "out")
    assert d.crops == () and [p.name for p in d.headshots] == ["headshot-001.jpg"]
    with Image.open(d.headshots[0]) as img:
        assert img.size == (1024, 1024)
    assert json.loads(d.results_json.read_text())["images"][0]["format"] == "square"


def test_encoded_ahead_portraits_give_byte_identical_deliverables(tmp_path: Path) -> None:
    sel = _portrait_selection(tmp_path, 3)
    direct = build_deliverables(sel, tmp_path / "direct", workers=1)
    ahead = tmp_path / "encoded"
    encode_headshot(sel.path(sel.records[0]), ahead)  # the writer thread's call: formats from the canvas
    mixed = build_deliverables(sel, tmp_path / "mixed", encoded_dir=ahead)
    for a, b in zip(direct.files(), mixed.files(), strict=True):
        assert a.name == b.name and a.read_bytes() == b.read_bytes(), a.name


# --- marked as AI-made ----------------------------------------------------------------------
def test_every_delivered_jpeg_one_by_one_in_the_zip_and_the_preview_carries_both_marks(tmp_path: Path) -> None:
    d = build_deliverables(_portrait_selection(tmp_path, 2), tmp_path / "out")
    jpegs = [*d.headshots, *d.crops, d.contact_sheet]
    unzipped = tmp_path / "unzipped"
    with zipfile.ZipFile(d.archive) as zf:
        zf.extractall(unzipped)
        jpegs += [unzipped / name for name in zf.namelist()]
    preview = tmp_path / "preview.jpg"
    preview.write_bytes(email_preview(d.contact_sheet.read_bytes(), 2))
    for path in [*jpegs, preview]:
        marks = check_marks(path)
        assert marks.xmp.ai_generated, path.name
        assert marks.watermark.found and marks.watermark_reencoded.found, (path.name, marks)

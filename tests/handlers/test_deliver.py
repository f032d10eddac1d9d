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
    encode_headshot,
    encoded_paths,
    headshot_name,
    sheet_layout,
    tile_origin,
)
from handlers.generate.records import Attempt, ImageRecord, SelectionResult

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
    Image.new("RGB", (640, 480), COLOURS[0]).save(source)
    out = encode_headshot(source, tmp_path / "enc")
    with Image.open(out.jpeg) as jpeg, Image.open(out.tile) as tile:
        assert jpeg.format == "JPEG" and jpeg.size == (640, 480) and jpeg.info.get("progressive")
        assert tile.size == (SHEET_TILE, SHEET_TILE * 480 // 640)

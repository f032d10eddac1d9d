"""Selection with real face photos standing in for generated images.

The image source of ``generate_and_select`` is injectable: here a scripted source hands back
real photos (the user, strangers, a retina scan, two people side by side) for each
(prompt, attempt), and the loop must accept, reject, regenerate and stop as specified.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handlers.faces import Face
from handlers.generate.config import GenerateConfig
from handlers.generate.loop import ImageRequest, generate_and_select, seed_for
from handlers.generate.prompts import PromptSet, load_prompt_set
from handlers.generate.select import (
    REASON_IDENTITY,
    REASON_NEAR_DUPLICATE,
    REASON_NO_FACE,
    REASON_SEVERAL_FACES,
    SelectConfig,
    drop_near_duplicates,
    judge,
    score_image,
)


def _reencoded(img: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).resize((img.shape[1] * 4 // 5, img.shape[0] * 4 // 5)).save(buf, "JPEG", quality=70)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


class ScriptedPhotos:
    """An ImageSource that returns a chosen real photo for each (prompt, attempt)."""

    def __init__(self, script: dict[tuple[int, int], np.ndarray]) -> None:
        self.script = script
        self.requests: list[ImageRequest] = []
        self.batches: list[int] = []

    def generate_images(self, requests: Sequence[ImageRequest]) -> list[np.ndarray]:
        self.requests.extend(requests)
        self.batches.append(len(requests))
        return [self.script[(r.prompt_index, r.attempt)] for r in requests]


def _face(box: tuple[int, int, int, int], emb: np.ndarray) -> Face:
    return Face(box=box, confidence=0.99, embedding=emb)


# --- pure decisions ------------------------------------------------------------------------
def test_judge_rejects_no_face_and_two_comparable_faces_but_ignores_a_small_background_face() -> None:
    ref = np.array([[1.0, 0.0, 0.0]], dtype=np.float32)
    me = np.array([0.99, 0.1, 0.0], dtype=np.float32)
    assert judge([], ref, 0.2).reason == REASON_NO_FACE
    two = judge([_face((0, 0, 100, 100), me), _face((200, 0, 80, 80), me)], ref, 0.2)
    assert (two.accepted, two.reason, two.faces) == (False, REASON_SEVERAL_FACES, 2)
    background = judge([_face((0, 0, 100, 100), me), _face((200, 0, 30, 30), -me)], ref, 0.2)
    assert background.accepted and background.faces == 1


def test_judge_measures_distance_to_the_photo_set_not_to_one_photo() -> None:
    refs = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)  # centroid at 45 degrees
    between = judge([_face((0, 0, 50, 50), np.array([1.0, 1.0]))], refs, 0.05)
    assert between.accepted and between.distance == pytest.approx(0.0, abs=1e-6)
    one_photo = judge([_face((0, 0, 50, 50), np.array([1.0, 0.0]))], refs, 0.05)
    assert not one_photo.accepted and one_photo.reason == REASON_IDENTITY
    assert one_photo.distance == pytest.approx(1 - np.cos(np.pi / 4), abs=1e-5)


def test_drop_near_duplicates_keeps_the_first_of_each_near_copy() -> None:
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    embs = [a, b, a + np.array([0.0, 0.01, 0.0]), np.array([0.0, 0.0, 1.0]), b.copy()]
    assert drop_near_duplicates(embs, 0.01) == [0, 1, 3]
    assert drop_near_duplicates(embs, 0.0) == [0, 1, 2, 3, 4]


def test_select_config_defaults_to_the_recognizer_threshold_and_checks_values() -> None:
    assert SelectConfig().threshold_for(0.18) == 0.18
    assert SelectConfig(threshold=0.1).threshold_for(0.18) == 0.1
    assert SelectConfig().duplicate_for(0.09) == pytest.approx(0.0108)
    assert SelectConfig(duplicate_distance=0.02).duplicate_for(0.09) == 0.02
    with pytest.raises(ValueError):
        SelectConfig(mode="keep")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SelectConfig(threshold=0.0)


# --- real photos through the face model ------------------------------------------------------
def test_score_image_passes_the_user_and_rejects_strangers_non_faces_and_pairs(
        face_analyzer, selection_photos, reference_embeddings) -> None:
    cfg = SelectConfig()  # the recognizer's own threshold
    for shot in selection_photos.shots:
        v = score_image(shot, face_analyzer, reference_embeddings, cfg)
        assert v.accepted and v.distance < 0.05 and v.embedding is not None
    for name, stranger in selection_photos.strangers.items():
        v = score_image(stranger, face_analyzer, reference_embeddings, cfg)
        assert (v.accepted, v.reason) == (False, REASON_IDENTITY), name
        assert v.distance > face_analyzer.threshold
    assert score_image(selection_photos.no_face, face_analyzer, reference_embeddings,
                       cfg).reason == REASON_NO_FACE
    assert score_image(selection_photos.two_people, face_analyzer, reference_embeddings,
                       cfg).reason == REASON_SEVERAL_FACES


def test_loop_regenerates_rejects_within_k_drops_duplicates_and_delivers_exactly_n(
        tmp_path: Path, face_analyzer, selection_photos, reference_embeddings) -> None:
    p = selection_photos
    shot7, shot8, shot9 = p.shots
    source = ScriptedPhotos({
        (0, 0): p.strangers["biden"], (0, 1): p.no_face, (0, 2): shot7,        # accepted at attempt 2
        (1, 0): shot8,                                                          # accepted at once
        (2, 0): _reencoded(shot8), (2, 1): p.two_people, (2, 2): p.strangers["astronaut"],  # abandoned
        (3, 0): shot9,                                                          # the next prompt
    })
    accepted_now: list[int] = []
    result = generate_and_select(
        source, load_prompt_set(), "sks", reference_embeddings, tmp_path,
        GenerateConfig(num_images=3, pool_size=3, batch_size=2, max_regenerations=2, resolution=128, seed=5),
        SelectConfig(), face_analyzer,
        on_image=lambda r: accepted_now.append(r.prompt_index),
    )
    assert [r.prompt_index for r in result.records] == [0, 1, 3]
    assert [r.attempt for r in result.records] == [2, 0, 0]
    assert result.shortfall == 0 and accepted_now == [1, 0, 3]
    first = result.records[0]
    assert [(a.attempt, a.reason) for a in first.history] == [(0, REASON_IDENTITY), (1, REASON_NO_FACE), (2, None)]
    assert first.seed == seed_for(5, 0, 2) and len({a.seed for a in first.history}) == 3
    by_prompt2 = [(a.attempt, a.reason) for a in result.attempts if a.prompt_index == 2]
    assert by_prompt2 == [(0, REASON_NEAR_DUPLICATE), (1, REASON_SEVERAL_FACES), (2, REASON_IDENTITY)]
    assert max(a.attempt for a in result.attempts) == 2  # K = 2 regenerations, never more
    assert len(result.attempts) == 8 and result.regenerations == 4 and result.generated == 8
    # batched, and never past what could still be needed: with 2 kept and (2, 2) in flight,
    # prompt 3 waits until (2, 2) has failed
    assert source.batches == [2, 2, 2, 1, 1]
    assert {(r.prompt_index, r.attempt) for r in source.requests}.isdisjoint({(4, 0)})
    assert sorted(f.name for f in tmp_path.iterdir()) == ["p000-a2.png", "p001-a0.png", "p003-a0.png"]
    s = result.summary()
    assert s["rejections_by_reason"] == {"identity": 2, "near_duplicate": 1, "no_face": 1, "several_faces": 1}
    assert s["acceptance_rate"] == pytest.approx(3 / 8, abs=1e-4)


def test_when_prompts_run_out_the_loop_delivers_what_passed_and_reports_the_shortfall(
        tmp_path: Path, face_analyzer, selection_photos, reference_embeddings) -> None:
    p = selection_photos
    three = PromptSet(prompts=("headshot of {identifier} person, grey suit",
                               "portrait of {identifier} person, outdoors",
                               "photo of {identifier} person, office"),
                      negative_prompt="blurry", class_prompt="a photo of a person",
                      instance_prompt="a photo of {identifier} person")
    source = ScriptedPhotos({
        (0, 0): p.shots[0],
        (1, 0): p.no_face, (1, 1): p.strangers["grace_hopper"],
        (2, 0): p.no_face, (2, 1): p.no_face,
    })
    result = generate_and_select(source, three, "sks", reference_embeddings, tmp_path,
                                 GenerateConfig(num_images=3, pool_size=3, batch_size=4, max_regenerations=1, resolution=128),
                                 SelectConfig(), face_analyzer)
    assert [r.prompt_index for r in result.records] == [0]
    assert result.shortfall == 2 and result.summary()["shortfall"] == 2
    assert len(result.attempts) == 5  # each failing prompt tried 1 + K times, then given up


def test_report_mode_keeps_every_image_with_its_score_and_never_regenerates(
        tmp_path: Path, face_analyzer, selection_photos, reference_embeddings) -> None:
    p = selection_photos
    source = ScriptedPhotos({(0, 0): p.shots[0], (1, 0): p.strangers["biden"], (2, 0): p.no_face})
    result = generate_and_select(source, load_prompt_set(), "sks", reference_embeddings, tmp_path,
                                 GenerateConfig(num_images=3, pool_size=3, batch_size=3, resolution=128),
                                 SelectConfig(mode="report"), face_analyzer)
    assert [(r.prompt_index, r.accepted) for r in result.records] == [(0, True), (1, False), (2, False)]
    assert result.records[0].distance < 0.05 and result.records[1].distance > face_analyzer.threshold
    assert result.records[2].distance is None and result.records[2].history[0].reason == REASON_NO_FACE
    assert result.regenerations == 0 and result.shortfall == 0


def test_each_kept_image_records_where_its_face_is_and_its_file_carries_the_box_to_delivery(
        tmp_path: Path, face_analyzer, selection_photos, reference_embeddings) -> None:
    from handlers.generate.image_writer import read_face_box

    p = selection_photos
    source = ScriptedPhotos({(0, 0): p.shots[0], (1, 0): p.no_face})
    result = generate_and_select(source, load_prompt_set(), "sks", reference_embeddings, tmp_path,
                                 GenerateConfig(num_images=2, pool_size=2, batch_size=2, resolution=128),
                                 SelectConfig(mode="report"), face_analyzer)
    found = face_analyzer.faces(p.shots[0])
    assert result.records[0].face_box == tuple(found[0].box) and result.records[1].face_box is None
    with Image.open(result.path(result.records[0])) as img:
        assert read_face_box(img) == result.records[0].face_box
    with Image.open(result.path(result.records[1])) as img:
        assert read_face_box(img) is None


def test_a_retried_job_skips_done_prompts_and_still_drops_copies_of_their_images(
        tmp_path: Path, face_analyzer, selection_photos, reference_embeddings) -> None:
    p = selection_photos
    cfg = GenerateConfig(num_images=2, pool_size=2, batch_size=1, max_regenerations=1, resolution=128)
    first = generate_and_select(ScriptedPhotos({(0, 0): p.shots[1]}), load_prompt_set(), "sks",
                                reference_embeddings, tmp_path, GenerateConfig(num_images=1, pool_size=1, resolution=128),
                                SelectConfig(), face_analyzer)
    source = ScriptedPhotos({(1, 0): _reencoded(p.shots[1]), (1, 1): p.shots[2]})
    result = generate_and_select(source, load_prompt_set(), "sks", reference_embeddings, tmp_path, cfg,
                                 SelectConfig(), face_analyzer, done=first.records)
    assert [(r.prompt_index, r.attempt) for r in result.records] == [(0, 0), (1, 1)]
    assert [r.prompt_index for r in source.requests] == [1, 1]  # prompt 0 was not made again
    assert result.records[1].history[0].reason == REASON_NEAR_DUPLICATE


def test_a_turned_head_is_scored_as_the_person_not_regenerated_as_no_face(face_analyzer, sample_sources):
    """Frames of a real video where the woman turns and tilts her head (the Haar cascades
    found no face in them): found, and within the identity threshold of her frontal frames."""
    from processor.devkit.samples import ONE_WOMAN_FRAMES, video_frames

    video = sample_sources.path("one_woman.mp4")
    refs = np.stack([face_analyzer.faces(f)[0].embedding for f in video_frames(video, ONE_WOMAN_FRAMES["frontal"])])
    for frame in video_frames(video, (460, 464)):
        verdict = score_image(frame, face_analyzer, refs)
        assert verdict.accepted and verdict.reason is None, verdict

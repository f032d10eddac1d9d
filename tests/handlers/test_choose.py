"""The checkpoint + LoRA-scale choice: the candidate closest to the held-out photos wins."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from handlers.choose import (
    NO_FACE_DISTANCE,
    Candidate,
    candidate_score,
    choose_checkpoint,
    pick,
    validation_requests,
)
from handlers.generate.image_source import ImageRequest
from tests.handlers.scripted_faces import REFERENCES, ScriptedAnalyzer, grey

BOX = (16, 16, 32, 32)


class ScriptedRenderer:
    """Renders each candidate as a grey level the test chose (the analyzer maps it to a distance)."""

    def __init__(self, levels: dict[tuple[int, float], int]) -> None:
        self.levels = levels
        self.rendered: list[tuple[int, float, int]] = []

    def render(self, candidate: Candidate, requests: Sequence[ImageRequest]) -> list[np.ndarray]:
        self.rendered.append((candidate.step, candidate.scale, len(requests)))
        return [grey(self.levels[(candidate.step, candidate.scale)]) for _ in requests]


CHECKPOINTS = [(400, Path("ckpt-400")), (600, Path("ckpt-600")), (800, Path("weights"))]


def test_the_candidate_with_the_best_score_is_chosen_and_every_score_is_recorded() -> None:
    levels = {(400, 0.8): 10, (400, 1.0): 11, (600, 0.8): 12, (600, 1.0): 13, (800, 0.8): 14, (800, 1.0): 15}
    distances = {10: 0.08, 11: 0.07, 12: 0.05, 13: 0.03, 14: 0.06, 15: 0.04}  # 600 @ 1.0 is closest
    renderer = ScriptedRenderer(levels)
    requests = validation_requests(["a", "b", "c", "d"], 3)
    choice = choose_checkpoint(CHECKPOINTS, (0.8, 1.0), renderer, requests, ScriptedAnalyzer(distances, BOX),
                               REFERENCES, "held_out")
    assert (choice.step, choice.scale, choice.weights_dir) == (600, 1.0, Path("ckpt-600"))
    assert choice.judged and choice.images == 18 and choice.references == "held_out"
    record = choice.to_dict()
    assert len(record["candidates"]) == 6
    assert {(c["step"], c["scale"]): c["score"] for c in record["candidates"]}[(600, 1.0)] == pytest.approx(0.03)
    assert all(n == 3 for *_, n in renderer.rendered)  # the same three prompts for every candidate


def test_validation_prompts_have_fixed_seeds_so_candidates_are_compared_on_the_same_noise() -> None:
    first, again = validation_requests(["a", "b", "c"], 2), validation_requests(["a", "b", "c"], 2)
    assert first == again and [r.prompt for r in first] == ["a", "b"] and first[0].seed != first[1].seed


def test_an_image_without_a_face_counts_as_far_and_a_set_without_faces_takes_the_last_at_full_scale() -> None:
    levels = {key: 0 for key in [(s, x) for s, _ in CHECKPOINTS for x in (0.8, 1.0)]}
    choice = choose_checkpoint(CHECKPOINTS, (0.8, 1.0), ScriptedRenderer(levels), validation_requests(["a"], 1),
                               ScriptedAnalyzer({}, BOX), REFERENCES, "training")
    assert (choice.step, choice.scale, choice.judged) == (800, 1.0, False)
    assert all(s.score == NO_FACE_DISTANCE and s.faces == 0 for s in choice.scores)
    half = candidate_score(Candidate(1, Path("x"), 1.0), [0.02, None])
    assert half.score == pytest.approx((0.02 + NO_FACE_DISTANCE) / 2) and half.faces == 1


def test_ties_go_to_the_later_checkpoint_then_the_scale_nearer_one() -> None:
    a = candidate_score(Candidate(400, Path("a"), 1.0), [0.05])
    b = candidate_score(Candidate(800, Path("b"), 0.8), [0.05])
    c = candidate_score(Candidate(800, Path("c"), 1.0), [0.05])
    assert (pick([a, b, c]).step, pick([a, b, c]).scale) == (800, 1.0)

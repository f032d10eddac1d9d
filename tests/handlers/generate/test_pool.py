"""The best N of a pool, not the first N: every pool image is made and checkpointed, the
closest to the person are delivered, and a resumed job makes none of the pool again."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from handlers.generate.config import GenerateConfig, pool_for
from handlers.generate.loop import ImageRequest, generate_and_select
from handlers.generate.prompts import load_prompt_set
from handlers.generate.select import SelectConfig
from tests.handlers.scripted_faces import REFERENCES, ScriptedAnalyzer, grey

BOX = (16, 16, 32, 32)
# prompt index -> identity distance (the threshold is 0.5; prompt 2 fails it)
DISTANCES = {0: 0.30, 1: 0.10, 2: 0.90, 3: 0.05, 4: 0.20, 5: 0.40, 6: 0.25, 7: 0.15}


class GreyPerPrompt:
    """An ImageSource whose image for prompt i is grey level 10 + i (the analyzer's key)."""

    def __init__(self) -> None:
        self.made: list[int] = []

    def generate_images(self, requests: Sequence[ImageRequest]) -> list[np.ndarray]:
        self.made.extend(r.prompt_index for r in requests)
        return [grey(10 + r.prompt_index) for r in requests]


def _run(out: Path, done=()):  # noqa: ANN001, ANN202
    source, seen = GreyPerPrompt(), []
    analyzer = ScriptedAnalyzer({10 + p: d for p, d in DISTANCES.items()}, BOX)
    config = GenerateConfig(num_images=3, pool_size=6, resolution=64, batch_size=2, max_regenerations=0)
    result = generate_and_select(source, load_prompt_set(), "sks", REFERENCES, out, config,
                                 SelectConfig(threshold=0.5, duplicate_distance=0.0), analyzer,
                                 on_image=seen.append, done=list(done))
    return result, source, seen


def test_the_pools_best_are_delivered_not_the_first_to_pass(tmp_path: Path) -> None:
    result, source, seen = _run(tmp_path)
    # prompts 0..6 were made (2 failed the threshold); the pool of 6 passing ones is 0,1,3,4,5,6
    assert sorted(r.prompt_index for r in seen) == [0, 1, 3, 4, 5, 6] and source.made == list(range(7))
    assert [r.prompt_index for r in result.records] == [1, 3, 4]  # the three closest, in prompt order
    pool = result.summary()["pool"]
    assert pool["size"] == 6 and pool["made"] == 6 and pool["delivered"] == 3
    assert sorted(pool["not_delivered"]) == ["p000-a0.png", "p005-a0.png", "p006-a0.png"]


def test_a_resumed_job_makes_none_of_the_pool_images_it_already_has(tmp_path: Path) -> None:
    _, _, seen = _run(tmp_path)
    result, source, _ = _run(tmp_path, done=seen[:4])
    # prompt 2 failed and was never checkpointed, so it is drawn again; no pool image is
    assert source.made == [2, 5, 6] and result.generated == 3
    assert [r.prompt_index for r in result.records] == [1, 3, 4]


def test_the_default_pool_is_thirty_percent_larger_and_never_below_the_delivery() -> None:
    assert pool_for(50) == 65 and pool_for(4) == 6
    assert GenerateConfig(num_images=50).pool == 65 and GenerateConfig(num_images=5, pool_size=2).pool == 5

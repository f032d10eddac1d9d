"""The face detail pass: crop, feathered paste, keep the better image, resume without redoing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handlers.detail import (
    KEPT_DETAILED,
    KEPT_ORIGINAL,
    NO_FACE,
    DetailConfig,
    Img2ImgRefiner,
    crop_square,
    detail_pass,
    feather_mask,
    paste_back,
)
from handlers.errors import Interrupted
from handlers.generate.records import ImageRecord
from tests.handlers.scripted_faces import REFERENCES, ScriptedAnalyzer, grey

BOX = (24, 24, 16, 16)  # the face in every 64 px test image
CONFIG = DetailConfig(resolution=32, crop_factor=1.6)


class PaintingRefiner:
    """img2img stand-in: paints the crop one grey level per prompt (the test picks the level)."""

    def __init__(self, levels: dict[str, int]) -> None:
        self.levels = levels
        self.calls: list[str] = []

    def refine(self, crop_rgb: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        assert crop_rgb.shape == (CONFIG.resolution, CONFIG.resolution, 3)  # upscaled to the model's side
        self.calls.append(prompt)
        return np.full_like(crop_rgb, self.levels[prompt])


def _records(folder: Path, n: int) -> list[ImageRecord]:
    records = []
    for i in range(n):
        Image.fromarray(grey(100)).save(folder / f"p{i:03d}-a0.png")
        records.append(ImageRecord(i, f"prompt {i}", 1000 + i, 0, f"p{i:03d}-a0.png", True, 0.05, (), BOX))
    return records


def test_crop_is_a_square_of_the_factor_around_the_face_moved_inside_the_image() -> None:
    assert crop_square((40, 40, 20, 20), 200, 200, 1.6) == (34, 34, 32, 32)
    assert crop_square((0, 0, 20, 30), 200, 200, 1.6) == (0, 0, 48, 48)  # at the corner: moved, not shrunk
    assert crop_square((0, 0, 100, 100), 64, 80, 1.6) == (0, 16, 64, 64)  # never beyond the image


def test_the_paste_is_feathered_full_in_the_middle_and_fading_to_the_edge() -> None:
    mask = feather_mask(32, 0.125)
    assert mask[16, 16] == 1.0 and mask[0, 16] < 0.25 and mask[0, 0] <= mask[0, 16]
    out = paste_back(grey(0), np.full((32, 32, 3), 200, np.uint8), (16, 16, 32, 32), mask)
    assert out[32, 32, 0] == 200 and 0 < out[16, 32, 0] < 200 and out[0, 0, 0] == 0


def test_the_detail_pass_keeps_the_detailed_image_only_where_identity_improves(tmp_path: Path) -> None:
    records = _records(tmp_path, 3)
    # the original (grey 100) is 0.05 away; prompt 0's detail 0.02 (better), prompt 1's 0.08 (worse),
    # prompt 2's draws no face
    analyzer = ScriptedAnalyzer({100: 0.05, 30: 0.02, 60: 0.08}, BOX)
    refiner = PaintingRefiner({"prompt 0": 30, "prompt 1": 60, "prompt 2": 250})
    kept, outcomes = detail_pass(records, tmp_path, refiner, analyzer, REFERENCES, CONFIG)
    assert [o.kept for o in outcomes] == [KEPT_DETAILED, KEPT_ORIGINAL, KEPT_ORIGINAL]
    assert kept[0].file == "p000-a0-detail.png" and kept[0].distance == pytest.approx(0.02, abs=1e-4)
    assert kept[1] == records[1] and kept[2] == records[2]
    assert np.asarray(Image.open(tmp_path / kept[0].file))[32, 32, 0] == 30
    assert not (tmp_path / "p001-a0-detail.png").exists()
    assert outcomes[1].before == pytest.approx(0.05) and outcomes[1].after == pytest.approx(0.08, abs=1e-4)


def test_an_image_without_a_face_is_left_alone_without_an_img2img_call(tmp_path: Path) -> None:
    [record] = _records(tmp_path, 1)
    faceless = ImageRecord(0, "prompt 0", 1, 0, record.file, True, None, (), None)
    refiner = PaintingRefiner({"prompt 0": 30})
    kept, [outcome] = detail_pass([faceless], tmp_path, refiner, ScriptedAnalyzer({}, BOX), REFERENCES, CONFIG)
    assert outcome.kept == NO_FACE and kept == [faceless] and refiner.calls == []


def test_a_stopped_pass_resumes_from_its_outcomes_without_redoing_an_image(tmp_path: Path) -> None:
    records = _records(tmp_path, 4)
    analyzer = ScriptedAnalyzer({100: 0.05, 30: 0.02}, BOX)
    refiner = PaintingRefiner({f"prompt {i}": 30 for i in range(4)})
    saved: list = []
    with pytest.raises(Interrupted):
        detail_pass(records, tmp_path, refiner, analyzer, REFERENCES, CONFIG, on_outcome=saved.append,
                    should_stop=lambda: len(saved) >= 2)
    assert len(refiner.calls) == 2 and len(saved) == 2
    again = PaintingRefiner(refiner.levels)
    kept, outcomes = detail_pass(records, tmp_path, again, analyzer, REFERENCES, CONFIG,
                                 done={o.file: o for o in saved}, on_outcome=saved.append)
    assert again.calls == ["prompt 2", "prompt 3"]  # only the two not done before
    assert len(saved) == 4 and all(o.kept == KEPT_DETAILED for o in outcomes)
    assert [r.file for r in kept] == [f"p{i:03d}-a0-detail.png" for i in range(4)]


def test_img2img_runs_on_the_tiny_model_from_the_generation_pipelines_own_components(tiny_model_dir: Path) -> None:
    import torch
    from diffusers import StableDiffusionXLPipeline

    torch.set_num_threads(2)
    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_model_dir)
    refiner = Img2ImgRefiner(pipe, DetailConfig(resolution=64, steps=4, strength=0.5), "blurry")
    assert refiner.pipe.unet is pipe.unet and refiner.pipe.vae is pipe.vae  # no second load
    crop = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    out = refiner.refine(crop, "a photo of sks person", 7)
    assert out.shape == crop.shape and out.dtype == np.uint8
    assert np.array_equal(out, refiner.refine(crop, "a photo of sks person", 7))  # seeded

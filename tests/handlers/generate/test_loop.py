"""Generation with the tiny SDXL model: seeds recorded, batches reproducible, schedule bounded.

The selection loop over real face photos lives in ``test_select_loop.py``-style tests in
``test_select.py``; here the image source is the real diffusers pipeline (tiny weights).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handlers.errors import Interrupted
from handlers.generate.config import GenerateConfig
from handlers.generate.loop import (
    AttemptPlanner,
    DiffusionSource,
    ImageRequest,
    generate_and_select,
    regenerate,
    seed_for,
)
from handlers.generate.prompts import load_prompt_set
from handlers.generate.select import SelectConfig
from handlers.progress import Progress

TINY = dict(steps=2, resolution=128, batch_size=8, guidance_scale=5.0, seed=7)


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_model_dir: Path):
    import torch
    from diffusers import StableDiffusionXLPipeline

    torch.set_num_threads(2)
    return StableDiffusionXLPipeline.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def fifty(tiny_pipeline, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("fifty")
    seen: list = []
    progress: list[Progress] = []
    result = generate_and_select(
        tiny_pipeline, load_prompt_set(), "sks", None, out, GenerateConfig(num_images=50, pool_size=50, **TINY),
        SelectConfig(mode="report"), analyzer=None, progress=progress.append, on_image=seen.append,
    )
    return result, seen, progress


def test_seed_is_a_pure_function_of_base_seed_prompt_and_attempt() -> None:
    assert seed_for(1234, 3, 0) == seed_for(1234, 3, 0)
    seeds = {seed_for(1234, p, a) for p in range(70) for a in range(4)}
    assert len(seeds) == 280  # no two images share noise
    assert seed_for(1234, 3, 0) != seed_for(1235, 3, 0)
    assert all(0 <= s < 2**32 for s in seeds)


def test_tiny_model_makes_fifty_images_one_per_prompt_with_recorded_seeds(fifty) -> None:
    result, seen, _ = fifty
    assert len(result.records) == 50 and result.shortfall == 0
    assert [r.prompt_index for r in result.records] == list(range(50))
    prompts = load_prompt_set().render("sks")
    for r in result.records:
        assert r.prompt == prompts[r.prompt_index]
        assert r.seed == seed_for(TINY["seed"], r.prompt_index, 0) and r.attempt == 0
        with Image.open(result.path(r)) as img:
            assert img.size == (128, 128) and img.mode == "RGB"
    assert len({r.seed for r in result.records}) == 50
    assert result.generated == 50 and result.summary()["scored"] is False
    assert sorted(r.prompt_index for r in seen) == list(range(50))  # on_image saw each at once


def test_images_differ_from_prompt_to_prompt(fifty) -> None:
    result, _, _ = fifty
    a = np.asarray(Image.open(result.path(result.records[0])), dtype=np.int16)
    b = np.asarray(Image.open(result.path(result.records[1])), dtype=np.int16)
    assert np.abs(a - b).mean() > 1.0


def test_a_job_with_portraits_generates_on_the_portrait_canvas_and_records_it(tiny_pipeline, tmp_path: Path) -> None:
    config = GenerateConfig(num_images=2, **{**TINY, "steps": 1}, formats=("square", "portrait"))
    result = generate_and_select(tiny_pipeline, load_prompt_set(), "sks", None, tmp_path, config,
                                 SelectConfig(mode="report"), analyzer=None)
    for r in result.records:
        with Image.open(result.path(r)) as img:
            assert img.size == (112, 144)  # SDXL's 896x1152 bucket at the tiny model's 128
    s = result.summary()
    assert (s["formats"], s["width"], s["height"]) == (["square", "portrait"], 112, 144)


def test_rerunning_one_recorded_seed_reproduces_the_image_pixel_identically(fifty, tiny_pipeline) -> None:
    result, _, _ = fifty
    record = result.records[13]
    attempt = record.history[-1]
    assert len(attempt.batch) == TINY["batch_size"]
    again = regenerate(tiny_pipeline, load_prompt_set(), "sks", attempt, GenerateConfig(num_images=50, **TINY))
    original = np.asarray(Image.open(result.path(record)))
    assert np.array_equal(again, original)
    # alone (batch of one) the same seed gives the same picture up to float rounding
    single = DiffusionSource(tiny_pipeline, GenerateConfig(**TINY), load_prompt_set().negative_prompt)
    alone = single.generate_images([ImageRequest(13, 0, record.prompt, record.seed)])[0]
    assert np.abs(alone.astype(int) - original.astype(int)).max() <= 1


def test_progress_reports_each_batch_up_to_the_target(fifty) -> None:
    _, _, progress = fifty
    assert [p.step for p in progress] == [8, 16, 24, 32, 40, 48, 50]
    assert all(p.stage == "generate" and p.total == 50 for p in progress)


def test_stop_request_interrupts_after_a_batch_with_its_images_kept(tiny_pipeline, tmp_path: Path) -> None:
    seen: list = []
    batches: list = []
    with pytest.raises(Interrupted):
        generate_and_select(tiny_pipeline, load_prompt_set(), "sks", None, tmp_path,
                            GenerateConfig(num_images=6, pool_size=6, **{**TINY, "batch_size": 2}),
                            SelectConfig(mode="report"), None, progress=batches.append,
                            should_stop=lambda: len(batches) >= 1, on_image=seen.append)
    # the first batch's writes (on the writer thread) have all landed before the stop is raised
    assert [r.prompt_index for r in seen] == [0, 1]
    assert all((tmp_path / r.file).is_file() for r in seen)
    # the retried job passes the finished records back in and makes only the rest
    result = generate_and_select(tiny_pipeline, load_prompt_set(), "sks", None, tmp_path,
                                 GenerateConfig(num_images=6, pool_size=6, **{**TINY, "batch_size": 2}),
                                 SelectConfig(mode="report"), None, done=seen)
    assert [r.prompt_index for r in result.records] == list(range(6))
    assert result.generated == 4


def test_enforce_mode_without_a_face_model_is_refused(tiny_pipeline, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="analyzer"):
        generate_and_select(tiny_pipeline, load_prompt_set(), "sks", None, tmp_path,
                            GenerateConfig(num_images=1, **TINY), SelectConfig(), None)


def test_config_rejects_guidance_off_and_odd_resolutions() -> None:
    with pytest.raises(ValueError):
        GenerateConfig(guidance_scale=1.0)
    with pytest.raises(ValueError):
        GenerateConfig(resolution=1020)
    assert GenerateConfig().resolution == 1024 and GenerateConfig().num_images == 50


def test_planner_retries_a_prompt_k_times_then_moves_to_the_next() -> None:
    planner = AttemptPlanner(n_prompts=5, num_images=2, max_regenerations=2)
    assert planner.next_batch(4) == [(0, 0), (1, 0)]  # never more than could still be needed
    planner.record(0, 0, accepted=False)
    planner.record(1, 0, accepted=True)
    assert planner.next_batch(4) == [(0, 1)]
    planner.record(0, 1, accepted=False)
    assert planner.next_batch(4) == [(0, 2)]
    planner.record(0, 2, accepted=False)  # K=2 regenerations spent: prompt 0 abandoned
    assert planner.abandoned == [0]
    assert planner.next_batch(4) == [(2, 0)]
    planner.record(2, 0, accepted=True)
    assert planner.finished and planner.next_batch(4) == []


def test_planner_finishes_short_when_prompts_run_out_and_skips_done_prompts() -> None:
    planner = AttemptPlanner(n_prompts=3, num_images=3, max_regenerations=0, skip=[1], already_accepted=1)
    assert planner.next_batch(8) == [(0, 0), (2, 0)]
    planner.record(0, 0, accepted=False)
    planner.record(2, 0, accepted=False)
    assert planner.finished and planner.accepted == 1

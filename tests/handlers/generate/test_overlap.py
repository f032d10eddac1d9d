"""Speed options of generation: scoring overlapped with generation, and the sampler choice.

Overlap runs the same selection rules with real face photos standing in for generated images
(the scripted source of test_select.py): same delivered set, same K bound, and a deterministic
schedule that plans each batch from the verdicts of all but the batch still being scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from handlers.errors import Interrupted
from handlers.generate.config import GenerateConfig
from handlers.generate.image_source import use_sampler
from handlers.generate.loop import ImageRequest, generate_and_select
from handlers.generate.prompts import load_prompt_set
from handlers.generate.select import REASON_NEAR_DUPLICATE, SelectConfig
from tests.handlers.generate.test_select import ScriptedPhotos, _reencoded


def _script(p) -> dict[tuple[int, int], np.ndarray]:
    shot7, shot8, shot9 = p.shots
    return {
        (0, 0): p.strangers["biden"], (0, 1): p.no_face, (0, 2): shot7,
        (1, 0): shot8,
        (2, 0): _reencoded(shot8), (2, 1): p.two_people, (2, 2): p.strangers["astronaut"],
        (3, 0): shot9,
    }


def _run(tmp: Path, source: ScriptedPhotos, overlap: bool, analyzer, refs, **kw):
    cfg = GenerateConfig(num_images=3, pool_size=3, batch_size=2, max_regenerations=2, resolution=128, seed=5,
                         overlap_scoring=overlap)
    return generate_and_select(source, load_prompt_set(), "sks", refs, tmp, cfg, SelectConfig(), analyzer, **kw)


def test_overlapped_scoring_delivers_what_the_sequential_loop_delivers(
        tmp_path: Path, face_analyzer, selection_photos, reference_embeddings) -> None:
    seq = _run(tmp_path / "seq", ScriptedPhotos(_script(selection_photos)), False, face_analyzer,
               reference_embeddings)
    source = ScriptedPhotos(_script(selection_photos))
    ovl = _run(tmp_path / "ovl", source, True, face_analyzer, reference_embeddings)
    assert [(r.prompt_index, r.attempt) for r in ovl.records] == [(r.prompt_index, r.attempt) for r in seq.records]
    assert [(a.prompt_index, a.attempt, a.reason) for a in sorted(ovl.attempts, key=lambda a: (a.prompt_index, a.attempt))] \
        == [(a.prompt_index, a.attempt, a.reason) for a in sorted(seq.attempts, key=lambda a: (a.prompt_index, a.attempt))]
    assert max(a.attempt for a in ovl.attempts) == 2 and ovl.generated == 8
    assert any(a.reason == REASON_NEAR_DUPLICATE for a in ovl.attempts)
    # planned without the verdicts of the batch in flight: retries start one batch later,
    # and never more is scheduled than could still be needed
    assert source.batches == [2, 1, 1, 1, 1, 1, 1]
    assert sorted(f.name for f in (tmp_path / "ovl").iterdir()) == ["p000-a2.png", "p001-a0.png", "p003-a0.png"]


def test_overlapped_schedule_is_the_same_on_every_run(
        tmp_path: Path, face_analyzer, selection_photos, reference_embeddings) -> None:
    runs = []
    for i in range(2):
        source = ScriptedPhotos(_script(selection_photos))
        _run(tmp_path / str(i), source, True, face_analyzer, reference_embeddings)
        runs.append([(r.prompt_index, r.attempt) for r in source.requests])
    assert runs[0] == runs[1]


def test_a_stop_request_with_overlap_keeps_every_generated_image(
        tmp_path: Path, face_analyzer, selection_photos, reference_embeddings) -> None:
    source = ScriptedPhotos(_script(selection_photos))
    with pytest.raises(Interrupted):
        _run(tmp_path, source, True, face_analyzer, reference_embeddings, should_stop=lambda: True)
    # the batch generated before the stop was seen is scored and settled, not dropped
    assert [(r.prompt_index, r.attempt) for r in source.requests] == [(0, 0), (1, 0)]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["p001-a0.png"]


class _Recorder:
    """Not a pipeline: anything with a scheduler attribute, to see the swap."""

    def __init__(self, scheduler) -> None:
        self.scheduler = scheduler


def test_sampler_option_swaps_the_scheduler_on_the_same_noise_schedule(tiny_model_dir: Path) -> None:
    from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler

    euler = EulerDiscreteScheduler.from_pretrained(tiny_model_dir, subfolder="scheduler")
    holder = _Recorder(euler)
    use_sampler(holder, "dpmpp_2m_karras")
    s = holder.scheduler
    assert isinstance(s, DPMSolverMultistepScheduler)
    assert s.config.use_karras_sigmas and s.config.algorithm_type == "dpmsolver++" and s.config.solver_order == 2
    assert s.config.beta_schedule == euler.config.beta_schedule and s.config.beta_end == euler.config.beta_end
    use_sampler(holder, "dpmpp_2m_karras")
    assert holder.scheduler is s  # already in place: untouched
    use_sampler(holder, "pipeline")
    assert holder.scheduler is s
    use_sampler(holder, "euler")
    assert isinstance(holder.scheduler, EulerDiscreteScheduler)
    with pytest.raises(ValueError, match="sampler"):
        GenerateConfig(sampler="ddim")


def test_dpm_sampler_images_are_reproducible_from_their_seed(tiny_model_dir: Path) -> None:
    from diffusers import StableDiffusionXLPipeline

    from handlers.generate.image_source import DiffusionSource

    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_model_dir)
    cfg = GenerateConfig(steps=3, resolution=128, sampler="dpmpp_2m_karras")
    src = DiffusionSource(pipe, cfg, "blurry")
    req: Sequence[ImageRequest] = [ImageRequest(0, 0, "a photo of sks person", 11)]
    a, b = src.generate_images(req)[0], src.generate_images(req)[0]
    assert np.array_equal(a, b)
    euler = DiffusionSource(pipe, GenerateConfig(steps=3, resolution=128, sampler="euler"), "blurry")
    assert not np.array_equal(a, euler.generate_images(req)[0])  # the sampler really changed


def test_compiled_unet_draws_what_eager_draws_and_the_next_jobs_unet_reuses_the_graphs(
        tiny_model_dir: Path) -> None:
    """``compile_unet`` is fullgraph (a graph break raises); a worker pays the compile once."""
    import time

    from diffusers import StableDiffusionXLPipeline

    from handlers.generate.image_source import DiffusionSource

    cfg = GenerateConfig(steps=2, resolution=64, batch_size=2)
    req: Sequence[ImageRequest] = [ImageRequest(0, 0, "a photo of sks person", 11),
                                   ImageRequest(1, 0, "a photo of sks person smiling", 12)]

    def job(compiled: bool) -> tuple[list[np.ndarray], float, object]:
        pipe = StableDiffusionXLPipeline.from_pretrained(tiny_model_dir)
        src = DiffusionSource(pipe, GenerateConfig(**{**cfg.__dict__, "compile_unet": compiled}), "blurry")
        t0 = time.perf_counter()
        images = src.generate_images(req)
        return images, time.perf_counter() - t0, pipe.unet

    eager, _, eager_unet = job(compiled=False)
    first, first_s, unet1 = job(compiled=True)
    second, second_s, unet2 = job(compiled=True)
    assert not hasattr(eager_unet, "_orig_mod") and hasattr(unet1, "_orig_mod") and unet2 is not unet1
    for e, c in zip(eager, first, strict=True):  # same picture up to float reordering
        assert np.abs(e.astype(int) - c.astype(int)).mean() < 1.0
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    # job 1 compiled (tens of seconds cold, seconds from inductor's disk cache); job 2 did not
    assert second_s < first_s / 3, (first_s, second_s)

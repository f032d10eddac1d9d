"""Class-prior images: generated once per base model and prompt, then reused by every user."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from diffusers import StableDiffusionXLPipeline
from PIL import Image

from handlers.class_prior import class_cache_key, class_image_name, ensure_class_images

RES = 64
PROMPT = "a photo of a person"


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_model_dir: Path) -> Any:
    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_model_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


class CountingPipe:
    """The real tiny pipeline, counting the images asked of it."""

    def __init__(self, pipe: Any) -> None:
        self.pipe, self.device, self.generated = pipe, pipe.device, 0

    def __call__(self, **kwargs: Any) -> Any:
        self.generated += len(kwargs["prompt"])
        return self.pipe(**kwargs)


class CountingLoader:
    """A pipeline loader that records how often it is called."""

    def __init__(self, pipe: Any) -> None:
        self.counted = CountingPipe(pipe)
        self.loads = 0

    def __call__(self) -> CountingPipe:
        self.loads += 1
        return self.counted

    @property
    def generated(self) -> int:
        return self.counted.generated


def never_load() -> Any:
    raise AssertionError("the class-image cache should have been hit: no generation allowed")


def ensure(cache: Path, model: Path, n: int, loader: Any) -> Path:
    return ensure_class_images(cache, str(model), PROMPT, n, resolution=RES, pipeline_loader=loader,
                               inference_steps=2, batch_size=2)


def test_first_user_generates_and_second_user_hits_the_cache_without_loading_the_model(
        tmp_path, tiny_model_dir, tiny_pipeline):
    loader = CountingLoader(tiny_pipeline)
    first = ensure(tmp_path, tiny_model_dir, 3, loader)
    assert (loader.loads, loader.generated) == (1, 3)
    files = sorted(p.name for p in first.glob("*.png"))
    assert files == [class_image_name(i) for i in range(3)]
    assert Image.open(first / files[0]).size == (RES, RES)
    second = ensure(tmp_path, tiny_model_dir, 3, never_load)
    assert second == first
    fewer = ensure(tmp_path, tiny_model_dir, 2, never_load)  # a smaller request is a hit too
    assert fewer == first


def test_a_larger_request_generates_only_the_missing_images(tmp_path, tiny_model_dir, tiny_pipeline):
    ensure(tmp_path, tiny_model_dir, 2, CountingLoader(tiny_pipeline))
    kept = (tmp_path / class_cache_key(str(tiny_model_dir), PROMPT, RES, inference_steps=2))
    before = {p.name: p.stat().st_mtime_ns for p in kept.glob("*.png")}
    loader = CountingLoader(tiny_pipeline)
    ensure(tmp_path, tiny_model_dir, 3, loader)
    assert loader.generated == 1
    assert {n: (kept / n).stat().st_mtime_ns for n in before} == before


def test_cache_key_separates_models_prompts_resolutions_and_sampler_settings():
    base = class_cache_key("stabilityai/stable-diffusion-xl-base-1.0", PROMPT, 1024)
    assert base == class_cache_key("stabilityai/stable-diffusion-xl-base-1.0", PROMPT, 1024)
    others = {
        class_cache_key("someone/other-sdxl", PROMPT, 1024),
        class_cache_key("stabilityai/stable-diffusion-xl-base-1.0", "a photo of a man", 1024),
        class_cache_key("stabilityai/stable-diffusion-xl-base-1.0", PROMPT, 768),
        class_cache_key("stabilityai/stable-diffusion-xl-base-1.0", PROMPT, 1024, inference_steps=20),
        class_cache_key("stabilityai/stable-diffusion-xl-base-1.0", PROMPT, 1024, seed=1),
    }
    assert base not in others and len(others) == 5
    assert base.startswith("stable-diffusion-xl-base-1.0-1024-")
    assert all(c.isalnum() or c in "._-" for c in base)  # safe as a folder and an S3 prefix


def test_nonpositive_count_is_refused(tmp_path):
    with pytest.raises(ValueError):
        ensure_class_images(tmp_path, "m", PROMPT, 0, resolution=RES, pipeline_loader=never_load)

"""Class-prior images ("a photo of a person"), generated once per base model and shared.

Why a cache: prior preservation needs ~100 images of the class drawn from the *base* model.
They depend only on the base model, the class prompt, the resolution and the sampler
settings, never on the user, so the first job generates them and every later job reuses
them: a new user never waits for class images. The folder name is :func:`class_cache_key`;
the runtime mirrors the folder to an S3 prefix of the same name.

The cache holds "at least n": image ``i`` is generated from seed ``seed + i`` and written
atomically as ``{i:05d}.png``, so a job asking for more images tops the folder up (the
existing ones are what they would have been anyway) and a killed generation resumes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
import torch

from handlers.progress import Progress, ProgressFn, report

log = structlog.get_logger(__name__)
CACHE_FILE = "class_cache.json"
PipelineLoader = Callable[[], Any]


def class_cache_key(base_model: str, class_prompt: str, resolution: int, *,
                    inference_steps: int = 30, guidance_scale: float = 5.0, seed: int = 0) -> str:
    """Folder name for the class images of one (model, prompt, resolution, sampler) setup."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", str(base_model).rstrip("/").split("/")[-1])[:48].strip("-")
    ident = json.dumps([str(base_model), class_prompt, resolution, inference_steps,
                        guidance_scale, seed])
    return f"{slug or 'model'}-{resolution}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"


def class_image_name(index: int) -> str:
    return f"{index:05d}.png"


def missing_indices(folder: Path, n: int) -> list[int]:
    """Indices below ``n`` whose image is not yet in ``folder``."""
    return [i for i in range(n) if not (folder / class_image_name(i)).exists()]


def load_base_pipeline(base_model: str) -> Any:
    """The base SDXL pipeline on the best local device (bf16 on CUDA, fp32 elsewhere)."""
    from diffusers import StableDiffusionXLPipeline

    from handlers.sdxl.loading import from_pretrained_variant, weight_variant

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    pipe = from_pretrained_variant(StableDiffusionXLPipeline, str(base_model),
                                   variant=weight_variant(dtype), dtype=dtype)
    return pipe.to(device)


def ensure_class_images(cache_dir: Path, base_model: str, class_prompt: str, n: int, *,
                        resolution: int, pipeline_loader: PipelineLoader | None = None,
                        inference_steps: int = 30, guidance_scale: float = 5.0, seed: int = 0,
                        batch_size: int = 4, progress: ProgressFn | None = None) -> Path:
    """Folder under ``cache_dir`` holding at least ``n`` class images; generates only what is missing.

    ``pipeline_loader`` is called only when an image is missing (default: load ``base_model``).
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    key = class_cache_key(base_model, class_prompt, resolution, inference_steps=inference_steps,
                          guidance_scale=guidance_scale, seed=seed)
    folder = Path(cache_dir) / key
    folder.mkdir(parents=True, exist_ok=True)
    todo = missing_indices(folder, n)
    if not todo:
        log.info("class_prior.cache_hit", key=key, images=n)
        return folder
    log.info("class_prior.generate", key=key, missing=len(todo), images=n)
    pipe = (pipeline_loader or (lambda: load_base_pipeline(base_model)))()
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)  # progress goes through ``progress``, not a tqdm bar
    device = getattr(pipe, "device", torch.device("cpu"))
    done = n - len(todo)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        generators = [torch.Generator(device=device).manual_seed(seed + i) for i in chunk]
        images = pipe(prompt=[class_prompt] * len(chunk), num_inference_steps=inference_steps,
                      guidance_scale=guidance_scale, height=resolution, width=resolution,
                      generator=generators).images
        for i, image in zip(chunk, images):
            tmp = folder / (class_image_name(i) + ".partial")
            image.save(tmp, format="PNG")
            tmp.rename(folder / class_image_name(i))
        done += len(chunk)
        report(progress, Progress("class_prior", done, n))
    (folder / CACHE_FILE).write_text(json.dumps({
        "base_model": str(base_model), "class_prompt": class_prompt, "resolution": resolution,
        "inference_steps": inference_steps, "guidance_scale": guidance_scale, "seed": seed,
        "images": max(n, len(list(folder.glob("*.png")))),
    }, indent=1), encoding="utf-8")
    return folder

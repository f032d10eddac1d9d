"""Generation throughput: images per minute and peak memory, batched against one at a time.

Default: the tiny SDXL model on CPU (keeps the bench alive in CI). ``--sdxl-shaped``: SDXL's
real UNet/VAE/text encoders with random weights on the GPU, 1024 px, 30 steps, CFG 5 (speed
does not depend on the weights' values). Both runs go through the production path,
``handlers.generate.generate_and_select`` over ``DiffusionSource``; selection is in report mode,
without face scoring (random weights draw no faces). Face scoring is timed separately on
real sample photos when deepface and its weights are installed; otherwise the JSON says why
it was skipped.

Prints ONE JSON line. ``bench_generation()`` is importable (bench/gpu_job.py reuses it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from handlers.generate.config import GenerateConfig
from handlers.generate.loop import generate_and_select
from handlers.generate.prompts import load_prompt_set
from handlers.generate.select import SelectConfig

REPO = Path(__file__).resolve().parents[1]


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_pipeline(sdxl_shaped: bool, device: torch.device, dtype: torch.dtype) -> Any:
    """The tiny model through ``from_pretrained`` or the SDXL-shaped random-weight pipeline."""
    if sdxl_shaped:
        from handlers.sdxl.configs import build_sdxl_pipeline

        return build_sdxl_pipeline(device, dtype)
    from diffusers import StableDiffusionXLPipeline

    from tests.fixtures.models import ensure_tiny_model

    return StableDiffusionXLPipeline.from_pretrained(ensure_tiny_model(), dtype=dtype).to(device)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def timed_run(pipeline: Any, device: torch.device, config: GenerateConfig) -> dict[str, Any]:
    """Generate ``config.num_images`` through the production loop; images/min and peak memory."""
    _reset_peak(device)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = generate_and_select(pipeline, load_prompt_set(), "sks", None, Path(tmp), config,
                                     SelectConfig(mode="report"), analyzer=None)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
    n = len(result.records)
    return {"images": n, "batch_size": config.batch_size, "seconds": round(seconds, 3),
            "images_per_minute": round(60 * n / seconds, 2), "peak_memory_mb": _peak_mb(device)}


def face_scoring(resolution: int, photos: int = 8) -> dict[str, Any]:
    """Seconds per image of ``score_image`` on real face photos, or why it could not run."""
    try:
        import deepface  # noqa: F401
        import numpy as np

        from handlers.faces import FaceAnalyzer
        from handlers.generate.select import score_image
        from handlers.images import load_image
        from processor.devkit.samples import (
            SampleSources,
            build_person_set,
            default_cache_dir,
        )
    except ImportError as exc:
        return {"status": f"skipped: {exc.name or exc} not installed"}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # only cached photos: a GPU machine has no network for `headshots assets` to use
            sources = SampleSources(default_cache_dir() / "images")
            paths = build_person_set(Path(tmp), n=photos + 3, sources=sources)
            from handlers.faces import install_weights

            install_weights(Path(os.environ.setdefault("DEEPFACE_HOME", str(REPO / ".cache" / "deepface"))))
            analyzer = FaceAnalyzer()
            images = [load_image(p) for p in paths]
            refs = np.stack([analyzer.faces(img)[0].embedding for img in images[:3]])
            import cv2

            candidates = [cv2.resize(img, (resolution, resolution)) for img in images[3:]]
            t0 = time.perf_counter()
            for img in candidates:
                score_image(img, analyzer, refs)
            per_image = (time.perf_counter() - t0) / len(candidates)
    except Exception as exc:  # weights missing, samples unavailable: report, do not crash
        return {"status": f"skipped: {type(exc).__name__}: {exc}"[:200]}
    return {"status": "measured", "photos": len(candidates), "seconds_per_image": round(per_image, 3)}


def bench_generation(sdxl_shaped: bool = False, device_name: str = "auto", images: int | None = None,
                     baseline_images: int | None = None, batch_size: int | None = None,
                     steps: int | None = None, resolution: int | None = None,
                     guidance_scale: float = 5.0, dtype_name: str | None = None) -> dict[str, Any]:
    """Batched vs one-at-a-time generation in the same process; returns the JSON figures."""
    device = _device(device_name)
    if sdxl_shaped:
        images, baseline_images = images or 50, baseline_images or 8
        batch_size, steps, resolution = batch_size or 8, steps or 30, resolution or 1024
        dtype_name = dtype_name or ("bfloat16" if device.type == "cuda" else "float32")
    else:
        images, baseline_images = images or 16, baseline_images or 8
        batch_size, steps, resolution = batch_size or 8, steps or 4, resolution or 128
        dtype_name = dtype_name or "float32"
    dtype = getattr(torch, dtype_name)
    t0 = time.perf_counter()
    pipeline = load_pipeline(sdxl_shaped, device, dtype)
    load_s = time.perf_counter() - t0

    def cfg(n: int, b: int, s: int = steps) -> GenerateConfig:
        return GenerateConfig(num_images=n, steps=s, guidance_scale=guidance_scale,
                              resolution=resolution, batch_size=b, seed=0, max_regenerations=0)

    timed_run(pipeline, device, cfg(batch_size, batch_size, 2))  # warm-up: kernels, allocator
    batched = timed_run(pipeline, device, cfg(images, batch_size))
    single = timed_run(pipeline, device, cfg(baseline_images, 1))
    figures: dict[str, Any] = {
        "bench": "generate",
        "model": "sdxl-shaped-random" if sdxl_shaped else "tiny-sdxl",
        "device": device.type,
        "card": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": dtype_name, "resolution": resolution, "steps": steps, "guidance_scale": guidance_scale,
        "load_seconds": round(load_s, 2),
        "batched": batched,
        "one_at_a_time": single,
        "speedup_batched_vs_single": round(batched["images_per_minute"] / single["images_per_minute"], 3),
        "seconds_for_50_batched": round(50 * 60 / batched["images_per_minute"], 1),
        "face_scoring": face_scoring(resolution),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdxl-shaped", action="store_true", help="SDXL-shaped random weights (GPU)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--images", type=int, help="images in the batched run (50 sdxl / 16 tiny)")
    parser.add_argument("--baseline-images", type=int, help="images in the one-at-a-time run (8)")
    parser.add_argument("--batch-size", type=int, help="batch of the batched run (8)")
    parser.add_argument("--steps", type=int, help="sampling steps (30 sdxl / 4 tiny)")
    parser.add_argument("--resolution", type=int, help="image side (1024 sdxl / 128 tiny)")
    parser.add_argument("--guidance-scale", type=float, default=5.0)
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"])
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import structlog  # the figures own stdout: logs go to stderr

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    figures = bench_generation(args.sdxl_shaped, args.device, args.images, args.baseline_images,
                               args.batch_size, args.steps, args.resolution, args.guidance_scale, args.dtype)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training speed and memory: the production settings against a naive baseline, same run.

Default: the tiny SDXL model on CPU at 128 px (keeps the bench alive in CI). With
``--sdxl-shaped`` it builds SDXL-base-1.0's real UNet/VAE/text encoders with random weights on
the GPU (speed does not depend on weight values) and trains at 1024 px.

Variants, each in its own subprocess (clean peak-memory figures, fresh accelerate state):
  optimized  the TrainConfig defaults: bf16 mixed precision on GPU, cached VAE latents and
             text embeddings, TF32, channels-last UNet (``--channels-last``)
  naive      fp32 (no TF32), every step re-encodes its images through the VAE and its captions
             through both text encoders (what a straightforward DreamBooth loop does)
Both use the same ``--gradient-checkpointing`` (default off, as TrainConfig).
Prints ONE JSON line: per method and variant steps/s, setup seconds, peak memory; the
optimized/naive speed ratio; and the projected training time of a 15-photo job under the
default step rule (prior batch included).

    python bench/train.py                                  # tiny, CPU, both methods
    python bench/train.py --sdxl-shaped --method lora --steps 12
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _write_images(folder: Path, n: int, resolution: int, seed: int) -> list[Path]:
    """Smooth random colour fields (JPEG): realistic decode cost, no photos of people."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        small = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
        img = Image.fromarray(small).resize((resolution, resolution), Image.Resampling.BICUBIC)
        path = folder / f"{i:05d}.jpg"
        img.save(path, quality=92)
        paths.append(path)
    return paths


def _dataset(root: Path, photos: int, copies: int, resolution: int) -> Any:
    from handlers.prepare import PreparedDataset, PreparedImage

    paths = _write_images(root / "instance", photos * (1 + copies), resolution, seed=1)
    prompt, cls = "a photo of wpz person", "a photo of a person"
    images = tuple(PreparedImage(path=p, caption=prompt, source=f"photo-{i // (1 + copies)}.jpg")
                   for i, p in enumerate(paths))
    return PreparedDataset(root=root / "instance", images=images, identifier="wpz",
                           instance_prompt=prompt, class_prompt=cls, resolution=resolution)


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Train ``spec['steps']`` steps of one variant and measure it (runs in a subprocess)."""
    import torch

    from handlers.sdxl.loading import torch_dtype
    from handlers.train.config import TrainConfig
    from handlers.train.dreambooth import (
        resolve_device,
        resolve_precision,
        train_dreambooth,
    )

    device = resolve_device(spec["device"])
    precision = resolve_precision(device, "bf16" if spec["variant"] == "optimized" else "no")
    naive = spec["variant"] == "naive"
    config = TrainConfig(
        base_model=spec["base_model"], method=spec["method"], steps=spec["steps"],
        resolution=spec["resolution"], mixed_precision=precision, device=device.type,
        cache_latents=not naive, cache_text_embeddings=not naive,
        gradient_checkpointing=spec["gradient_checkpointing"], checkpoint_every=0,
        channels_last=not naive and spec["channels_last"], allow_tf32=not naive,
        num_class_images=spec["class_images"],
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dataset = _dataset(root, spec["photos"], spec["copies"], spec["resolution"])
        class_dir = root / "class"
        _write_images(class_dir, spec["class_images"], spec["resolution"], seed=2)
        components = None
        started = time.perf_counter()
        if spec["sdxl_shaped"]:
            from handlers.sdxl.configs import build_sdxl_components

            dtype = torch.float32 if spec["method"] == "full" else torch_dtype(precision)
            components = build_sdxl_components(device, dtype)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        build_s = time.perf_counter() - started
        stamps: list[float] = []
        t0 = time.perf_counter()
        try:
            train_dreambooth(dataset, class_dir, root / "out", config,
                             progress=lambda p: stamps.append(time.perf_counter()),
                             components=components)
        except torch.cuda.OutOfMemoryError:
            return {"error": "out of memory", "steps_done": len(stamps)}
    warm = spec["warmup"]
    timed = stamps[warm:]
    sps = (len(timed) - 1) / (timed[-1] - timed[0]) if len(timed) > 1 else None
    step_s = 1.0 / sps if sps else 0.0
    out: dict[str, Any] = {
        "steps_per_s": round(sps, 4) if sps else None,
        "setup_s": round(stamps[0] - t0 - step_s, 2),  # load + cache latents/embeddings
        "build_s": round(build_s, 2),
        "precision": precision,
    }
    if device.type == "cuda":
        out["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    else:
        import resource

        out["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return out


def _spawn(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("r", suffix=".json") as result:
        cmd = [sys.executable, __file__, "--child", json.dumps(spec), "--result", result.name]
        try:  # children log to stderr so this process prints exactly one line
            proc = subprocess.run(cmd, stdout=sys.stderr, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f}s"}
        text = Path(result.name).read_text(encoding="utf-8")
        return json.loads(text) if text else {"error": f"exit code {proc.returncode}"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sdxl-shaped", action="store_true", help="SDXL-base-1.0 shapes, random weights (GPU)")
    p.add_argument("--method", choices=["lora", "full", "both"], default="both")
    p.add_argument("--variants", default="optimized,naive")
    p.add_argument("--steps", type=int, default=None, help="timed steps + warmup (default 12 tiny, 10 sdxl)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--photos", type=int, default=15)
    p.add_argument("--copies", type=int, default=2, help="augmented copies per photo")
    p.add_argument("--class-images", type=int, default=None)
    p.add_argument("--gradient-checkpointing", choices=["on", "off"], default="off")
    p.add_argument("--channels-last", choices=["on", "off"], default="on")
    p.add_argument("--device", default="auto")
    p.add_argument("--timeout", type=float, default=290.0, help="seconds per variant")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        Path(args.result).write_text(json.dumps(run_child(json.loads(args.child))), encoding="utf-8")
        return 0

    from handlers.train.config import TrainConfig
    from handlers.train.dreambooth import steps_for

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    base_model = "sdxl-shaped-random"
    if not args.sdxl_shaped:
        from tests.fixtures.models import ensure_tiny_model

        base_model = str(ensure_tiny_model())
    resolution = args.resolution or (1024 if args.sdxl_shaped else 128)
    steps = args.steps or (10 if args.sdxl_shaped else 12)
    methods = ["lora", "full"] if args.method == "both" else [args.method]
    spec = {"sdxl_shaped": args.sdxl_shaped, "base_model": base_model, "resolution": resolution,
            "steps": steps, "warmup": args.warmup, "photos": args.photos, "copies": args.copies,
            "class_images": args.class_images or (100 if args.sdxl_shaped else 20),
            "gradient_checkpointing": args.gradient_checkpointing == "on",
            "channels_last": args.channels_last == "on", "device": args.device}
    job_steps = steps_for(15, TrainConfig())
    report: dict[str, Any] = {"bench": "train", "model": "sdxl-shaped" if args.sdxl_shaped else "tiny",
                              "resolution": resolution, "timed_steps": steps - args.warmup,
                              "gradient_checkpointing": spec["gradient_checkpointing"],
                              "channels_last": spec["channels_last"],
                              "job_steps_15_photos": job_steps, "results": {}}
    try:
        import torch

        report["device"] = (torch.cuda.get_device_name(0) if torch.cuda.is_available()
                            else f"cpu x{os.cpu_count()}")
    except Exception:  # pragma: no cover - device name is informational
        report["device"] = "unknown"
    for method in methods:
        res: dict[str, Any] = {}
        for variant in args.variants.split(","):
            res[variant] = _spawn(spec | {"method": method, "variant": variant}, args.timeout)
        opt, naive = res.get("optimized", {}), res.get("naive", {})
        if opt.get("steps_per_s") and naive.get("steps_per_s"):
            res["speedup_vs_naive"] = round(opt["steps_per_s"] / naive["steps_per_s"], 2)
        if opt.get("steps_per_s"):
            res["projected_job_train_s"] = round(opt["setup_s"] + job_steps / opt["steps_per_s"], 1)
        report["results"][method] = res
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

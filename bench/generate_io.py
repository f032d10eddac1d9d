"""Host work around generation: on the generating thread (GPU waits) or behind it.

Per kept image the runtime writes a PNG, uploads it as a checkpoint (image, then its record,
through ``JobCheckpoints`` to the embedded S3 over HTTP) and encodes the delivery JPEG and
contact-sheet tile; delivery then builds the sheet, the zip and results.json. Two profiles,
timed in one run from the first batch to the deliverables built:

  naive       writes inline on the generating thread; delivery encodes every JPEG, serially
  optimized   writes on the writer thread while the next batch generates
              (``GenerateConfig.background_writes``), JPEGs encoded there ahead of delivery;
              delivery encodes only what is missing, on a thread pool

The host work is real: production's code on real face photos at 1024 px. The GPU's time is
modelled: each batch of ``--batch-size`` takes ``--gpu-seconds-per-image`` x batch, slept
(a CUDA synchronisation releases the GIL as a sleep does). The default, 1.33 s, is the H100's
measured 45.1 images/min at batch 8 (bench/results/h100-2026-11-26/generate.json).

Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from handlers.deliver import build_deliverables, encode_headshot  # noqa: E402
from handlers.generate.config import GenerateConfig
from handlers.generate.image_source import ImageRequest
from handlers.generate.loop import generate_and_select
from handlers.generate.prompts import load_prompt_set
from handlers.generate.select import SelectConfig

H100_SECONDS_PER_IMAGE = 60 / 45.1


class PacedPhotos:
    """Real photos as the generated images, at the pace of the modelled GPU."""

    def __init__(self, photos: Sequence[np.ndarray], seconds_per_image: float) -> None:
        self.photos = photos
        self.seconds_per_image = seconds_per_image
        self.busy_s = 0.0

    def generate_images(self, requests: Sequence[ImageRequest]) -> list[np.ndarray]:
        t0 = time.perf_counter()
        time.sleep(self.seconds_per_image * len(requests))
        self.busy_s += time.perf_counter() - t0
        return [self.photos[r.prompt_index % len(self.photos)] for r in requests]


def load_photos(resolution: int) -> list[np.ndarray]:
    import cv2

    from handlers.images import load_image
    from processor.devkit.samples import (
        SampleSources,
        build_person_set,
        default_cache_dir,
    )

    with tempfile.TemporaryDirectory() as tmp:
        paths = build_person_set(Path(tmp), n=8, sources=SampleSources(default_cache_dir() / "images"))
        return [cv2.resize(load_image(p), (resolution, resolution), interpolation=cv2.INTER_CUBIC)
                for p in paths]


def run_profile(name: str, photos: list[np.ndarray], ckpt: Any, loop: asyncio.AbstractEventLoop,
                root: Path, args: argparse.Namespace) -> dict[str, Any]:
    optimized = name == "optimized"
    image_dir, encoded_dir, out_dir = root / "images", root / "encoded", root / "results"
    source = PacedPhotos(photos, args.gpu_seconds_per_image)
    host_s = [0.0]
    lock = threading.Lock()

    def on_image(record: Any) -> None:  # what processor.pipeline does per kept image
        t0 = time.perf_counter()
        asyncio.run_coroutine_threadsafe(ckpt.save("generate", f"image-{record.file}", {record.file: image_dir / record.file},
                                                   record.to_dict()), loop).result()
        if optimized:
            encode_headshot(image_dir / record.file, encoded_dir)
        with lock:
            host_s[0] += time.perf_counter() - t0

    config = GenerateConfig(num_images=args.images, batch_size=args.batch_size, resolution=args.resolution,
                            background_writes=optimized)
    t0 = time.perf_counter()
    selection = generate_and_select(source, load_prompt_set(), "sks", None, image_dir, config,
                                    SelectConfig(mode="report"), None, on_image=on_image)
    generate_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    build_deliverables(selection, out_dir, encoded_dir if optimized else None,
                       workers=None if optimized else 1)
    deliver_s = time.perf_counter() - t1
    return {"generate_s": round(generate_s, 2), "gpu_busy_s": round(source.busy_s, 2),
            "gpu_idle_s": round(generate_s - source.busy_s, 2),
            "on_image_s": round(host_s[0], 2), "deliver_build_s": round(deliver_s, 2),
            "total_s": round(generate_s + deliver_s, 2)}


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    from processor.aws.storage import ObjectStore
    from processor.devkit.local_stack import LocalStack
    from processor.job.checkpoints import JobCheckpoints
    from processor.job.fence import Fence

    photos = load_photos(args.resolution)
    loop = asyncio.get_running_loop()
    figures: dict[str, Any] = {}
    with LocalStack(smtp=False) as stack, tempfile.TemporaryDirectory() as tmp:
        settings = stack.provision("genio")
        async with ObjectStore(settings) as store:
            for name in ("naive", "optimized") * args.repeat:
                root = Path(tmp) / f"{name}-{len(figures)}"
                job_id = f"genio-{name}-{len(figures)}"
                ckpt = JobCheckpoints(store, settings.output_bucket, job_id, Fence(job_id))
                run = await asyncio.to_thread(run_profile, name, photos, ckpt, loop, root, args)
                figures.setdefault(name, []).append(run)
    best = {k: min(v, key=lambda r: r["total_s"]) for k, v in figures.items()}
    return {
        "bench": "generate_io", "images": args.images, "batch_size": args.batch_size,
        "resolution": args.resolution, "gpu_seconds_per_image": round(args.gpu_seconds_per_image, 3),
        "gpu_model": "slept at the measured H100 rate" if args.gpu_seconds_per_image == H100_SECONDS_PER_IMAGE
        else "slept at the given rate",
        "cpu": f"x{os.cpu_count()}", "repeat": args.repeat,
        "naive": best["naive"], "optimized": best["optimized"],
        "host_seconds_off_the_gpu_path": round(best["naive"]["total_s"] - best["optimized"]["total_s"], 2),
        "gpu_idle_ratio": round(best["naive"]["gpu_idle_s"] / max(best["optimized"]["gpu_idle_s"], 1e-3), 1),
        "speedup": round(best["naive"]["total_s"] / best["optimized"]["total_s"], 3),
        "runs": figures,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--resolution", type=int, default=1024)
    p.add_argument("--gpu-seconds-per-image", type=float, default=H100_SECONDS_PER_IMAGE)
    p.add_argument("--repeat", type=int, default=1, help="runs per profile; the best is reported")
    args = p.parse_args(argv)
    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    print(json.dumps(asyncio.run(_main(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

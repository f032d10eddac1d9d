"""Does ``torch.compile`` of the sampling UNet pay back, and over how many jobs?

A worker is long-running: it compiles when its first job generates, and the next job's UNet
(a new object, same class and shapes) reuses the compiled graphs; a restarted worker finds
them in inductor's on-disk cache. So the question is not "does compile pay back within one
job" but "after how many jobs". Measured, in one process unless said otherwise:

  eager        a batch through the production loop (``generate_and_select``), warm
  job 1        new pipeline, ``GenerateConfig(compile_unet=True)``: first batch (compiles,
               inductor cache empty: a fresh ``TORCHINDUCTOR_CACHE_DIR``), then warm batches
  job 2        another new pipeline, compiled again in the same process
  restart      a child process with the same (now warm) on-disk cache, like a restarted worker

Compile cost of a job = its first batch minus a warm compiled batch. Saving per job = (eager -
compiled) per batch x the batches of one job (50 images + 30% regenerations by default; a
timed batch of fewer steps than a job's is scaled by ``--job-steps``).

    python bench/compile_unet.py                    # tiny model, CPU (what CI can run)
    python bench/compile_unet.py --sdxl-shaped      # SDXL shapes, 1024 px, bf16, on the GPU

Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def payback(eager_batch_s: float, compiled_batch_s: float, batches_per_job: float,
            compile_costs_s: dict[str, float]) -> dict[str, Any]:
    """Seconds saved per job and, for each compile cost, the jobs needed to earn it back.

    ``batches_per_job`` may be fractional: batches of the timed step count that make one job.
    """
    saving = (eager_batch_s - compiled_batch_s) * batches_per_job
    jobs = {name: (round(cost / saving, 2) if saving > 0 else None) for name, cost in compile_costs_s.items()}
    return {"saving_per_job_s": round(saving, 2), "jobs_to_pay_back": jobs,
            "pays_back_within_first_job": saving > 0 and compile_costs_s.get("cold", math.inf) <= saving}


def _one_job(args: argparse.Namespace, compiled: bool) -> dict[str, float]:
    """A new pipeline; seconds of its first batch and of a warm batch (best of ``--batches``)."""
    import torch

    from bench.generate import _device, load_pipeline, timed_run
    from handlers.generate.config import GenerateConfig

    device = _device(args.device)
    pipeline = load_pipeline(args.sdxl_shaped, device, getattr(torch, args.dtype))
    config = GenerateConfig(num_images=args.batch_size, steps=args.steps, resolution=args.resolution,
                            batch_size=args.batch_size, seed=0, max_regenerations=0,
                            compile_unet=compiled)
    first = timed_run(pipeline, device, config)["seconds"]
    warm = min(timed_run(pipeline, device, config)["seconds"] for _ in range(args.batches))
    del pipeline
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"first_batch_s": first, "batch_s": warm}


def _restart_child(args: argparse.Namespace) -> dict[str, float]:
    """The compiled job in a fresh process that inherits this run's inductor cache."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", *_shared_argv(args)]
    done = subprocess.run(argv, capture_output=True, text=True, env=os.environ.copy(), check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _shared_argv(args: argparse.Namespace) -> list[str]:
    out = ["--device", args.device, "--dtype", args.dtype, "--batch-size", str(args.batch_size),
           "--steps", str(args.steps), "--resolution", str(args.resolution), "--batches", str(args.batches)]
    return out + (["--sdxl-shaped"] if args.sdxl_shaped else [])


def bench_compile(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    eager = _one_job(args, compiled=False)
    job1 = _one_job(args, compiled=True)
    job2 = _one_job(args, compiled=True)
    restart = _restart_child(args) if not args.no_restart else None
    compiled_batch = min(j["batch_s"] for j in (job1, job2))
    costs = {"cold": job1["first_batch_s"] - job1["batch_s"],
             "second_job_same_process": job2["first_batch_s"] - job2["batch_s"]}
    if restart is not None:
        costs["restart_warm_disk_cache"] = restart["first_batch_s"] - restart["batch_s"]
    # a job's batches, in units of the timed batch (the job may sample more steps per image)
    batches_per_job = math.ceil(args.job_images / args.batch_size) * args.job_steps / args.steps
    return {
        "bench": "compile",
        "model": "sdxl-shaped-random" if args.sdxl_shaped else "tiny-sdxl",
        "card": torch.cuda.get_device_name() if args.device != "cpu" and torch.cuda.is_available() else "cpu",
        "dtype": args.dtype, "resolution": args.resolution, "steps": args.steps,
        "batch_size": args.batch_size, "job_images": args.job_images, "job_steps": args.job_steps,
        "batches_per_job": round(batches_per_job, 2),
        "eager": eager, "compiled_job1": job1, "compiled_job2": job2, "compiled_restart": restart,
        "speedup_compiled_vs_eager": round(eager["batch_s"] / compiled_batch, 3),
        "compile_cost_s": {k: round(v, 2) for k, v in costs.items()},
        **payback(eager["batch_s"], compiled_batch, batches_per_job, costs),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sdxl-shaped", action="store_true", help="SDXL-shaped random weights (GPU)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--dtype", help="float32 (tiny, CPU) / bfloat16 (sdxl-shaped)")
    p.add_argument("--batch-size", type=int, help="images per batch (8 sdxl / 4 tiny)")
    p.add_argument("--steps", type=int, help="sampling steps (25 sdxl / 10 tiny)")
    p.add_argument("--resolution", type=int, help="image side (1024 sdxl / 128 tiny)")
    p.add_argument("--batches", type=int, default=2, help="warm batches timed per job (best of)")
    p.add_argument("--job-images", type=int, default=65, help="images of one job: 50 + 30%% regenerations")
    p.add_argument("--job-steps", type=int, help="sampling steps of a real job (default: --steps)")
    p.add_argument("--cache-dir", help="inductor cache (default: a fresh temporary folder, i.e. cold)")
    p.add_argument("--no-restart", action="store_true", help="skip the restarted-worker child")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sdxl = args.sdxl_shaped
    args.dtype = args.dtype or ("bfloat16" if sdxl else "float32")
    args.batch_size = args.batch_size or (8 if sdxl else 4)
    args.steps = args.steps or (25 if sdxl else 10)
    args.resolution = args.resolution or (1024 if sdxl else 128)
    args.job_steps = args.job_steps or args.steps
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import structlog  # the figures own stdout: logs go to stderr

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    if args.child:
        print(json.dumps(_one_job(args, compiled=True)))
        return 0
    with tempfile.TemporaryDirectory(prefix="inductor-") as fresh:
        # set before torch compiles anything, and inherited by the restart child
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = args.cache_dir or fresh
        print(json.dumps(bench_compile(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

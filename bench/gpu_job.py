"""One whole job's GPU work, phase by phase: where a job's GPU minutes go, before and after.

Phases, in the order a job runs them: ``load`` (models; SDXL-shaped random init stands in for
``from_pretrained``), ``prepare`` (15 photos -> face-centred crops), ``class_prior`` (cache
miss: generate the class images; cache hit: reuse them), ``train`` (default method and step
rule for 15 photos), ``generate`` (50 images + the expected regenerations, default 30%, with
selection's face scoring in the loop when deepface is importable) and ``selection`` (face
scoring of that many images, timed on real face photos: random weights draw no faces).

Profiles, so "before" and "after" run from one script in one lease:
  baseline   fp32, no TF32, VAE/text re-encoded every step, class images generated per job,
             Euler at 30 steps, one image at a time, face scoring after each image
  optimized  bf16, TF32, channels-last, cached latents and text embeddings, class-image cache
             hit, DPM-Solver++ 2M Karras at 25 steps, batches of 8, face scoring on a thread
             while the next batch generates (``--compile`` adds torch.compile to generation)

Caps (``--train-steps``, ``--images``, ``--class-images``) time a sample of each phase and
PROJECT the full job from the measured rates; the JSON keeps ``measured`` and ``projected``
apart. On CPU (default, tiny model) the caps default small so the script runs in seconds.

    python bench/gpu_job.py                                     # tiny, CPU, optimized
    python bench/gpu_job.py --sdxl-shaped --profile baseline --train-steps 6 --images 4
    python bench/gpu_job.py --ablate                           # what each optimisation buys
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from handlers.generate.config import pool_for  # noqa: E402

JOB_PHOTOS = 15
JOB_IMAGES = 50
TRAIN_PHOTOS = JOB_PHOTOS - 2  # 15 usable photos: 2 held out as the judge's references (handlers/holdout.py)
# Measured H100 rates the projection reads (sources: docs/judge.md, docs/performance.md).
H100 = {
    "train_instance_samples_per_s": 1.69,  # issue 22: 1.69 steps/s, one instance + one prior per step
    "generate_s_per_image_30_steps": round(10.647 / 8, 4),  # h100-2026-11-26/generate.json, batch 8
    "load_s": 10.68,  # the same run's pipeline load
    "prepare_s": 2.0,  # CPU crops of 15 phone photos (bench/gpu_job.py CPU runs: ~1-2 s)
    "vae_encode_s": 0.05,  # one 1024 px VAE encode: ~1/3 of a decode (assumed, not measured)
    "face_score_s_per_image": 0.15,  # dlib HOG + ResNet on one 1024 px image (CPU; bench/faces.py order)
    "unfused_lora_factor": 1.25,  # PEFT adapters unfused add matmuls: assumed, to be measured
}
# Step rule proposed in docs/performance.md: (steps per photo, min, max) per method, sized so
# that training fits issue 4's targets (LoRA < 4 min, full < 8 min) at the H100 rates.
PROPOSED_STEP_RULE = {"lora": (25, 250, 375), "full": (60, 400, 900)}


@dataclass(frozen=True)
class Profile:
    """Every speed option of one profile (training, class prior, generation)."""

    name: str
    precision: str  # accelerate mixed precision on GPU ("no" = fp32)
    cache: bool  # cached VAE latents and text embeddings
    channels_last: bool
    tf32: bool
    class_cache_hit: bool  # the job's class prior costs a cache hit, not a generation
    sampler: str
    steps: int
    batch_size: int
    overlap_scoring: bool
    background_writes: bool
    compile_unet: bool = False


PROFILES = {
    "baseline": Profile("baseline", "no", False, False, False, False, "euler", 30, 1, False, False),
    "optimized": Profile("optimized", "bf16", True, True, True, True, "dpmpp_2m_karras", 25, 8, True, True),
}

# Leave-one-out (``--ablate``): the optimized profile with one change undone, so each change's
# worth is measured, not assumed. Each names the phases it acts on (its cost is read there
# only: the other phases' differences are the machine's noise) and whether it acts on CUDA only.
@dataclass(frozen=True)
class Ablation:
    undo: dict[str, Any]
    phases: tuple[str, ...]
    cuda_only: bool = False


_GEN = ("generate", "selection")
ABLATIONS: dict[str, Ablation] = {
    "bf16": Ablation({"precision": "no"}, ("train", "class_prior", *_GEN), cuda_only=True),
    "tf32": Ablation({"tf32": False}, ("train", "class_prior", *_GEN), cuda_only=True),
    "channels_last": Ablation({"channels_last": False}, ("train", *_GEN), cuda_only=True),
    "cached_latents_and_text": Ablation({"cache": False}, ("train",)),
    "class_image_cache": Ablation({"class_cache_hit": False}, ("class_prior",)),
    "dpmpp_25_steps": Ablation({"sampler": "euler", "steps": 30}, _GEN),
    "batched_generation": Ablation({"batch_size": 1}, _GEN),
    "overlapped_scoring": Ablation({"overlap_scoring": False}, _GEN),
    "background_writes": Ablation({"background_writes": False}, _GEN),
}


def proposed_steps(method: str, n_photos: int) -> int:
    per, lo, hi = PROPOSED_STEP_RULE[method]
    return max(lo, min(hi, per * n_photos))


def expected_images(num_images: int, regeneration_rate: float) -> int:
    """Images a job generates: the delivered ones plus the expected regenerations."""
    return round(num_images * (1 + regeneration_rate))


def project(measured_s: float, done: int, full: int, fixed_s: float = 0.0) -> float:
    """Seconds for ``full`` units from ``done`` measured ones (plus a one-off ``fixed_s``)."""
    return round(fixed_s + (measured_s - fixed_s) / max(done, 1) * full, 2)


class Phases:
    """Measured seconds and peak GPU memory per phase, and their projections."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.items: dict[str, dict[str, Any]] = {}

    def timed(self, name: str, fn: Callable[[], Any]) -> Any:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        out = fn()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        entry = {"measured_s": round(time.perf_counter() - t0, 3)}
        if self.device.type == "cuda":
            entry["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        self.items[name] = entry
        return out


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _write_photos(folder: Path, n: int, size: tuple[int, int]) -> tuple[list[Path], list[tuple[int, int, int, int]]]:
    """Phone-sized smooth colour fields (no photos of people) and a face box in each."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    w, h = size
    paths, boxes = [], []
    for i in range(n):
        small = (rng.random((6, 8, 3)) * 255).astype(np.uint8)
        path = folder / f"photo-{i:02d}.jpg"
        Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC).save(path, quality=90)
        paths.append(path)
        boxes.append((w // 3, h // 4, w // 3, w // 3))
    return paths, boxes


def face_setup(resolution: int) -> tuple[Any, Any, list[Any]] | str:
    """(analyzer, reference embeddings, real face images at ``resolution``) or why not."""
    try:
        import cv2
        import numpy as np

        from handlers.faces import FaceAnalyzer, FaceModelConfig, install_weights
        from handlers.images import load_image
        from processor.devkit.samples import (
            SampleSources,
            build_person_set,
            default_cache_dir,
        )
    except ImportError as exc:
        return f"skipped: {exc.name or exc} not installed"
    except Exception as exc:  # a library that fails while importing (missing native parts)
        return f"skipped: {type(exc).__name__}: {exc}"[:200]
    try:
        home = Path(os.environ.setdefault("DEEPFACE_HOME", str(REPO / ".cache" / "deepface")))
        install_weights(home)
        analyzer = FaceAnalyzer(FaceModelConfig(weights_home=home))
        with tempfile.TemporaryDirectory() as tmp:
            paths = build_person_set(Path(tmp), n=11, sources=SampleSources(default_cache_dir() / "images"))
            images = [load_image(p) for p in paths]
        refs = np.stack([analyzer.faces(img)[0].embedding for img in images[:3]])
        return analyzer, refs, [cv2.resize(img, (resolution, resolution)) for img in images[3:]]
    except Exception as exc:  # weights or sample photos missing: say so, do not crash
        return f"skipped: {type(exc).__name__}: {exc}"[:200]


def run_job(args: argparse.Namespace, prof: Profile | None = None) -> dict[str, Any]:
    """Run every phase of one job under ``prof`` (default ``args.profile``); return the figures."""
    from diffusers import StableDiffusionXLPipeline

    import numpy as np

    from handlers.class_prior import ensure_class_images
    from handlers.detail import DetailConfig, Img2ImgRefiner
    from handlers.generate.config import GenerateConfig
    from handlers.generate.loop import generate_and_select
    from handlers.generate.prompts import load_prompt_set
    from handlers.generate.select import SelectConfig, score_image
    from handlers.prepare import PrepareConfig, prepare_instance_images
    from handlers.sdxl.configs import SDXLComponents, build_sdxl_pipeline
    from handlers.sdxl.loading import torch_dtype
    from handlers.train.config import TrainConfig
    from handlers.train.dreambooth import (
        resolve_device,
        resolve_precision,
        steps_for,
        train_dreambooth,
    )
    from handlers.train.trained_model import load_trained_pipeline

    prof = prof or PROFILES[args.profile]
    if args.compile:
        prof = replace(prof, compile_unet=True)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    precision = resolve_precision(device, prof.precision)
    dtype = torch_dtype(precision) if gpu else torch.float32
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = prof.tf32
        torch.backends.cudnn.allow_tf32 = prof.tf32
    resolution = 1024 if args.sdxl_shaped else 128
    n_class = 100 if args.sdxl_shaped else 20
    n_gen = expected_images(pool_for(JOB_IMAGES), args.regeneration_rate)
    caps = {"train_steps": args.train_steps or (None if gpu else 4),
            "images": min(args.images or (n_gen if gpu else 8), n_gen),
            "class_images": min(args.class_images or (n_class if gpu else 2), n_class),
            "detail_images": min(args.detail_images or (8 if gpu else 2), JOB_IMAGES)}
    phases = Phases(device)
    tiny_dir = None
    if not args.sdxl_shaped:
        from tests.fixtures.models import ensure_tiny_model

        tiny_dir = str(ensure_tiny_model())
    base_model = tiny_dir or "sdxl-shaped-random"
    prompts = load_prompt_set()
    identifier = "sks"
    faces = face_setup(resolution) if not args.no_faces else "skipped: --no-faces"

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        def base_pipeline() -> Any:
            if args.sdxl_shaped:
                return build_sdxl_pipeline(device, dtype)
            return StableDiffusionXLPipeline.from_pretrained(tiny_dir, dtype=dtype).to(device)

        pipe = phases.timed("load", base_pipeline)
        pipe.set_progress_bar_config(disable=True)

        # prepare: decode, crop around the face, augment, write at the model resolution
        photo_size = (3024, 4032) if args.sdxl_shaped else (480, 640)
        photos, boxes = _write_photos(root / "photos", JOB_PHOTOS, photo_size)
        dataset = phases.timed("prepare", lambda: prepare_instance_images(
            photos, boxes, root / "prepared", PrepareConfig(identifier=identifier, resolution=resolution)))

        # class prior: a miss generates the sample, a hit finds the folder full
        def class_images() -> Path:
            return ensure_class_images(root / "class-cache", base_model, dataset.class_prompt,
                                       caps["class_images"], resolution=resolution,
                                       pipeline_loader=lambda: pipe, inference_steps=30,
                                       batch_size=prof.batch_size if gpu else 2)
        class_dir = phases.timed("class_prior_miss", class_images)
        phases.timed("class_prior_hit", class_images)

        # train: default method and step rule for the 13 training photos of 15 (2 held out)
        job_steps = steps_for(TRAIN_PHOTOS, TrainConfig(method=args.method))
        run_steps = min(caps["train_steps"] or job_steps, job_steps)
        config = TrainConfig(base_model=base_model, method=args.method, steps=run_steps,
                             resolution=resolution, mixed_precision=precision, device=device.type,
                             cache_latents=prof.cache, cache_text_embeddings=prof.cache,
                             channels_last=prof.channels_last, allow_tf32=prof.tf32,
                             num_class_images=caps["class_images"], checkpoint_every=0)
        components = None
        if args.sdxl_shaped:  # train the modules already on the device (what loading would give)
            components = SDXLComponents(pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2,
                                        pipe.tokenizer, pipe.tokenizer_2, dict(pipe.scheduler.config))
        pipe = None
        _free(device)
        stamps: list[float] = []
        result = phases.timed("train", lambda: train_dreambooth(
            dataset, class_dir, root / "train", config, progress=lambda p: stamps.append(time.perf_counter()),
            components=components))
        components = None
        _free(device)

        # generate: the trained pipeline, 50 images + expected regenerations, scored in the loop
        def trained_pipeline() -> Any:
            if args.sdxl_shaped:  # a fused LoRA runs at the base UNet's speed: fresh SDXL shapes
                return build_sdxl_pipeline(device, dtype)
            return load_trained_pipeline(tiny_dir, result.weights_dir, device, dtype)

        gen_pipe = phases.timed("load_trained", trained_pipeline)
        analyzer, refs = (faces[0], faces[1]) if not isinstance(faces, str) else (None, None)
        gen_config = GenerateConfig(num_images=caps["images"], steps=prof.steps, resolution=resolution,
                                    batch_size=prof.batch_size, seed=0, max_regenerations=0,
                                    sampler=prof.sampler, overlap_scoring=prof.overlap_scoring,
                                    channels_last=prof.channels_last, compile_unet=prof.compile_unet,
                                    background_writes=prof.background_writes)
        warm = replace(gen_config, num_images=prof.batch_size, steps=2)
        generate_and_select(gen_pipe, prompts, identifier, None, root / "warm", warm,
                            SelectConfig(mode="report"), None)  # kernels, allocator, compile
        phases.timed("generate", lambda: generate_and_select(
            gen_pipe, prompts, identifier, refs, root / "images", gen_config,
            SelectConfig(mode="report"), analyzer))

        # detail: img2img of face crops at the model resolution, from the same components
        detail_config = DetailConfig(resolution=resolution, steps=prof.steps)
        refiner = Img2ImgRefiner(gen_pipe, detail_config, prompts.negative_prompt)
        crop = np.zeros((resolution, resolution, 3), dtype=np.uint8)
        refiner.refine(crop, prompts.render(identifier)[0], 0)  # warm-up
        phases.timed("detail", lambda: [refiner.refine(crop, prompts.render(identifier)[0], i)
                                        for i in range(caps["detail_images"])])
        refiner = None
        gen_pipe = None
        _free(device)

        # selection: face scoring of real faces (generated noise has none to embed)
        score_s = None
        if not isinstance(faces, str):
            candidates = faces[2]
            t0 = time.perf_counter()
            for img in candidates:
                score_image(img, analyzer, refs)
            score_s = (time.perf_counter() - t0) / len(candidates)

    # --- projection to the full job ------------------------------------------------------
    m = phases.items
    timed = stamps[1:]  # the first step pays for warm-up
    rate = (len(timed) - 1) / (timed[-1] - timed[0]) if len(timed) > 1 else None
    # fixed cost: caching latents/embeddings before the first step, writing weights after the last
    train_setup = round(m["train"]["measured_s"] - (len(stamps) / rate if rate else 0.0), 2)
    m["train"].update(steps=run_steps, job_steps=job_steps, steps_per_s=round(rate, 4) if rate else None,
                      fixed_s=train_setup,
                      projected_s=round(train_setup + job_steps / rate, 1) if rate else None)
    m["class_prior_miss"].update(images=caps["class_images"], job_images=n_class,
                                 projected_s=project(m["class_prior_miss"]["measured_s"], caps["class_images"], n_class))
    m["class_prior_hit"]["projected_s"] = m["class_prior_hit"]["measured_s"]
    gen_per_image = m["generate"]["measured_s"] / caps["images"]
    m["generate"].update(images=caps["images"], job_images=n_gen, batch_size=prof.batch_size,
                         sampler=prof.sampler, steps=prof.steps, overlap_scoring=prof.overlap_scoring,
                         scored_in_loop=analyzer is not None,
                         projected_s=round(gen_per_image * n_gen, 2))
    for name in ("load", "prepare", "load_trained"):
        m[name]["projected_s"] = m[name]["measured_s"]
    # the checkpoint choice: one base pipeline load, then its images at generation's rate
    choice_images = choice_image_count()
    m["choose"] = {"images": choice_images, "measured_s_per_image": round(gen_per_image, 4),
                   "projected_s": round(m["load_trained"]["measured_s"] + choice_images * gen_per_image, 2)}
    m["detail"].update(images=caps["detail_images"], job_images=JOB_IMAGES, strength=DetailConfig().strength,
                       projected_s=project(m["detail"]["measured_s"], caps["detail_images"], JOB_IMAGES))
    if score_s is not None:
        serial = score_s * n_gen
        # overlapped: only the last batch's scoring waits, unless scoring is the slower side
        exposed = (score_s * prof.batch_size + max(0.0, serial - gen_per_image * n_gen)
                   if prof.overlap_scoring else serial)
        m["selection"] = {"measured_s_per_image": round(score_s, 4), "job_images": n_gen,
                          "overlapped": prof.overlap_scoring, "projected_s": round(exposed, 2)}
    class_phase = "class_prior_hit" if prof.class_cache_hit else "class_prior_miss"
    in_total = ["load", "prepare", class_phase, "train", "choose", "load_trained", "generate", "detail"] + (
        ["selection"] if "selection" in m else [])
    total = sum(m[k]["projected_s"] or 0.0 for k in in_total)
    figures: dict[str, Any] = {
        "bench": "gpu_job", "profile": prof.name,
        "model": "sdxl-shaped-random" if args.sdxl_shaped else "tiny-sdxl",
        "device": device.type,
        "card": torch.cuda.get_device_name(0) if gpu else f"cpu x{os.cpu_count()}",
        "method": args.method, "precision": precision, "resolution": resolution, "photos": JOB_PHOTOS,
        "regeneration_rate": args.regeneration_rate,
        "caps": caps,
        "phases": m,
        "total_in": in_total,
        "total_s_projected": round(total, 1),
        "total_s_measured": round(sum(v["measured_s"] for v in m.values() if "measured_s" in v), 1),
        "face_scoring": "measured" if score_s is not None else faces if isinstance(faces, str) else "?",
        "proposed_step_rule": _proposal(args.method, rate, train_setup),
        "h100_projection": h100_projection(args.method, args.regeneration_rate,
                                           score_s if score_s is not None else None),
        "measured_vs_projected": "measured_s: timed in this run on the capped sample; projected_s: the "
                                 "full job (15 photos, default step rule, 50 images + regenerations) "
                                 "from the measured rates",
        "torch": torch.__version__,
    }
    if gpu:
        figures["peak_gpu_gib"] = max(v.get("peak_gpu_gib", 0.0) for v in m.values())
    return figures


def choice_image_count(prompts: int | None = None, scales: int | None = None) -> int:
    """Images the checkpoint choice renders: candidates (50/75/100%) x LoRA scales x prompts,
    from the settings' defaults and the checkpoint rule (not hard-coded here)."""
    from handlers.train.checkpoint import candidate_steps
    from processor.settings import Settings

    fields = Settings.model_fields
    n_prompts = prompts if prompts is not None else fields["choice_prompts"].default
    n_scales = scales if scales is not None else len(fields["choice_scales"].default)
    return (len(candidate_steps(1000)) + 1) * n_scales * n_prompts


def h100_projection(method: str, regeneration_rate: float, score_s: float | None) -> dict[str, Any]:
    """The whole job on one H100, step by step, from the measured H100 rates (docs/judge.md):
    training at the issue's measured 1.69 steps/s of one instance + one prior image at 1024 px
    (3.38 images/s, held flat per image whatever the batch: batching's gain is not assumed),
    generation at bench/results/h100-2026-11-26/generate.json's batched rate scaled to
    the service's step count, the detail pass at img2img's share of those steps. The step count
    comes from ``steps_for`` and both batch sizes (instance, class) from ``TrainConfig``: the
    projection follows whatever step rule is in the code."""
    from handlers.detail import DetailConfig
    from handlers.train.config import TrainConfig
    from handlers.train.dreambooth import steps_for
    from processor.settings import Settings

    config = TrainConfig(method=method)
    steps = steps_for(TRAIN_PHOTOS, config)
    samples = steps * config.batch_size
    images_per_step = config.batch_size + (config.class_batch_size if config.prior_loss_weight > 0 else 0)
    train_s = steps * images_per_step / (2 * H100["train_instance_samples_per_s"])  # measured at 1 + 1 a step
    gen_steps = Settings.model_fields["inference_steps"].default
    per_image = H100["generate_s_per_image_30_steps"] * gen_steps / 30
    score = score_s if score_s is not None else H100["face_score_s_per_image"]
    pool = pool_for(JOB_IMAGES)
    generated = expected_images(pool, regeneration_rate)
    strength = DetailConfig().strength
    choice_images = choice_image_count()
    costs = {
        "load": H100["load_s"],
        "prepare": H100["prepare_s"],
        "class_prior_hit": 0.0,
        "train": round(train_s, 1),
        # a second pipeline load (base + adapters) and its images, the LoRA unfused
        "choose": round(H100["load_s"] + choice_images * per_image * H100["unfused_lora_factor"], 1),
        "load_trained": H100["load_s"],
        # the pool: 65 passing for 50 delivered, plus the expected regenerations; scoring overlaps
        "generate": round(generated * per_image, 1),
        "pool_extra_images": round((generated - expected_images(JOB_IMAGES, regeneration_rate)) * per_image, 1),
        # img2img denoises strength x steps, plus the VAE encode and two face scorings per image
        "detail": round(JOB_IMAGES * (per_image * strength + H100["vae_encode_s"] + 2 * score), 1),
    }
    in_total = [k for k in costs if k != "pool_extra_images"]  # already inside "generate"
    total = sum(costs[k] for k in in_total)
    return {
        "card": "H100 (projected from measured rates)", "rates": H100,
        "train_photos": TRAIN_PHOTOS, "train_steps": steps, "batch_size": config.batch_size,
        "class_batch_size": config.class_batch_size, "images_per_step": images_per_step,
        "instance_samples": samples,
        "instance_samples_per_gpu_s": round(samples / total, 4),
        "instance_samples_per_train_s": round(samples / train_s, 4),
        "instance_samples_per_train_s_today": H100["train_instance_samples_per_s"],
        "pool": pool, "generated_images": generated, "choice_images": choice_images,
        "choice_share_of_training": round(costs["choose"] / train_s, 4),
        "costs_s": costs, "total_in": in_total, "total_s": round(total, 1),
        "total_min": round(total / 60, 2), "under_20_min": total < 20 * 60,
    }


def _phase_s(figures: dict[str, Any], phase: str) -> float:
    """Projected seconds of ``phase`` in the job's total ("class_prior": whichever the job pays)."""
    names = [k for k in figures["total_in"] if k == phase or k.startswith(phase + "_")]
    return sum(figures["phases"][k]["projected_s"] or 0.0 for k in names)


def ablate(args: argparse.Namespace) -> dict[str, Any]:
    """The optimized job, then once per change with that change undone (leave-one-out)."""
    full = run_job(args, PROFILES["optimized"])
    gpu = full["device"] == "cuda"
    without: dict[str, Any] = {}
    for name, ab in ABLATIONS.items():
        if ab.cuda_only and not gpu:
            without[name] = {"skipped": "acts on CUDA only"}
            continue
        run = run_job(args, replace(PROFILES["optimized"], name=f"without {name}", **ab.undo))
        phases = {ph: {"with_s": round(_phase_s(full, ph), 2), "without_s": round(_phase_s(run, ph), 2)}
                  for ph in ab.phases if _phase_s(full, ph) or _phase_s(run, ph)}
        with_s = sum(v["with_s"] for v in phases.values())
        without_s = sum(v["without_s"] for v in phases.values())
        without[name] = {"undo": ab.undo, "phases": phases, "costs_s": round(without_s - with_s, 2),
                         "x": round(without_s / with_s, 2) if with_s >= 0.05 else None}
    return {"bench": "gpu_job_ablation", "model": full["model"], "card": full["card"],
            "method": args.method, "caps": full["caps"],
            "optimized_total_s_projected": full["total_s_projected"],
            "optimized_phases_s": {k: full["phases"][k]["projected_s"] for k in full["total_in"]},
            "without": without,
            "how": "per change: the optimized job run again with that one change undone; costs_s = "
                   "projected seconds of the phases it acts on, without minus with, x = their ratio",
            "torch": full["torch"]}


def _proposal(method: str, rate: float | None, setup_s: float) -> dict[str, Any]:
    per, lo, hi = PROPOSED_STEP_RULE[method]
    steps = proposed_steps(method, JOB_PHOTOS)
    return {"rule": f"{per}/photo clamped to [{lo}, {hi}]", "steps_15_photos": steps,
            "projected_train_s": round(setup_s + steps / rate, 1) if rate else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sdxl-shaped", action="store_true", help="SDXL-base-1.0 shapes, random weights (GPU)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="optimized")
    p.add_argument("--method", choices=["lora", "full"], default="lora")
    p.add_argument("--train-steps", type=int, help="train this many steps and project the rest")
    p.add_argument("--images", type=int, help="generate this many images and project the rest")
    p.add_argument("--class-images", type=int, help="class images generated on the cache miss")
    p.add_argument("--regeneration-rate", type=float, default=0.3)
    p.add_argument("--detail-images", type=int, help="detail-pass crops timed (the rest projected)")
    p.add_argument("--h100-only", action="store_true",
                   help="print only the H100 projection of the whole job (no model runs)")
    p.add_argument("--compile", action="store_true", help="torch.compile the generation UNet (see bench/compile_unet.py)")
    p.add_argument("--no-faces", action="store_true", help="skip face scoring")
    p.add_argument("--ablate", action="store_true",
                   help="measure each optimisation: the optimized job with one change undone at a time")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    if args.train_steps is not None and args.train_steps < 3:
        p.error("--train-steps must be at least 3 (one warm-up step, two timed)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import structlog  # the figures own stdout: logs go to stderr

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    with contextlib.redirect_stdout(sys.stderr):  # libraries that print (deepface) keep off stdout
        if args.h100_only:
            figures = {"bench": "gpu_job_h100_projection", **h100_projection(args.method, args.regeneration_rate, None)}
        else:
            figures = ablate(args) if args.ablate else run_job(args)
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

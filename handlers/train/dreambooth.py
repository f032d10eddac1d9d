"""DreamBooth on SDXL with class-prior preservation: LoRA or a full fine-tune of the UNet.

Why this shape: the loss is ``alpha * ||eps - eps_hat(instance)||^2 + beta * ||eps - eps_hat(class)||^2``
(DreamBooth's prior preservation keeps "a photo of a person" meaning any person while the
identifier learns this one). Conditioning follows SDXL: penultimate hidden states of both
text encoders, the pooled projection of the second, and micro-conditioning time ids.
Accelerate places the models and runs mixed precision; trainable weights stay fp32 while the
frozen ones run in fp16/bf16 on a GPU. Everything random is a pure function of
``(seed, step)``, so a checkpointed run resumes onto exactly the uninterrupted trajectory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
import torch
import torch.nn.functional as F

from handlers.errors import Interrupted
from handlers.prepare import PreparedDataset
from handlers.progress import Progress, ProgressFn, StopFn, report
from handlers.sdxl.configs import SDXLComponents
from handlers.sdxl.loading import torch_dtype
from handlers.train.checkpoint import (
    CANDIDATE_WEIGHTS,
    candidate_steps,
    load_checkpoint,
    resume_refusal,
    save_checkpoint,
)
from handlers.train.config import TrainConfig
from handlers.train.data import step_generator, time_ids
from handlers.train.models import make_optimizer, trainable_state
from handlers.train.setup import build_training
from handlers.train.trained_model import TrainResult, save_trained_weights

log = structlog.get_logger(__name__)





def instance_samples_for(n_photos: int, config: TrainConfig) -> int:
    """Instance images the run sees: ``instance_samples_per_photo`` (200) per usable photo,
    clamped to ``min_instance_samples``-``max_instance_samples`` (2,000-2,000 by default: the GPU
    budget's share of the published 2,000-4,000, docs/recipe.md)."""
    if n_photos < 1:
        raise ValueError("n_photos must be at least 1")
    per_photo = config.instance_samples_per_photo * n_photos
    return max(config.min_instance_samples, min(config.max_instance_samples, per_photo))


def steps_for(n_photos: int, config: TrainConfig) -> int:
    """Training steps for ``n_photos`` usable photos.

    Rule: ``config.steps`` if set; else the instance-sample budget over the batch size, rounded
    up: at batch 4, 2,000 samples -> 500 steps (with the ceiling raised to 4,000: 10 photos ->
    500 steps, 15 -> 750, 20 -> 1,000).
    """
    samples = instance_samples_for(n_photos, config)
    if config.steps is not None:
        return config.steps
    return math.ceil(samples / config.batch_size)


def min_snr_weights(scheduler: Any, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma loss weights per sample (Hang et al. 2023): ``min(SNR, gamma) / SNR`` for
    epsilon prediction, ``min(SNR, gamma) / (SNR + 1)`` for v-prediction, with
    ``SNR(t) = alpha_bar_t / (1 - alpha_bar_t)`` of the training noise schedule."""
    alpha_bar = scheduler.alphas_cumprod.to(timesteps.device, torch.float32)[timesteps]
    snr = alpha_bar / (1.0 - alpha_bar)
    clipped = torch.clamp(snr, max=gamma)
    return clipped / (snr + 1.0) if scheduler.config.prediction_type == "v_prediction" else clipped / snr


def resolve_device(requested: str) -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_precision(device: torch.device, requested: str) -> str:
    """Mixed precision only where it speeds things up: CPUs train in fp32."""
    return "no" if device.type == "cpu" else requested


def dreambooth_loss(unet: Any, scheduler: Any, batch: Any, gen: torch.Generator, res: int,
                    alpha: float, beta: float, noise_offset: float = 0.0,
                    snr_gamma: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """alpha * instance loss + beta * prior loss on one batch; returns (total, instance, prior).

    Each term is the mean over its images of the per-image MSE, weighted by min-SNR-gamma when
    ``snr_gamma`` is set (both terms: the same timestep rebalancing for instance and class
    images). ``noise_offset`` adds ``offset * N(0, 1)`` per image and channel to the noise
    (constant over the image), so the model learns to move an image's mean brightness.
    Noise, offset and timesteps come from ``gen``: the same generator state gives the same loss.
    """
    latents = batch.latents
    noise = torch.randn(latents.shape, generator=gen, device=latents.device)
    if noise_offset:
        noise = noise + noise_offset * torch.randn((*latents.shape[:2], 1, 1), generator=gen,
                                                   device=latents.device)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],),
                      generator=gen, device=latents.device)
    noisy = scheduler.add_noise(latents, noise, t)
    dtype = batch.prompt_embeds.dtype
    ids = (batch.time_ids.to(latents.device, dtype) if batch.time_ids is not None
           else time_ids(res, latents.shape[0], latents.device, dtype))
    pred = unet(noisy, t, encoder_hidden_states=batch.prompt_embeds,
                added_cond_kwargs={"text_embeds": batch.pooled, "time_ids": ids},
                return_dict=False)[0].float()
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, t)
    else:
        target = noise
    per_image = F.mse_loss(pred, target.float(), reduction="none").mean(dim=(1, 2, 3))
    if snr_gamma is not None:
        per_image = per_image * min_snr_weights(scheduler, t, snr_gamma)
    b = batch.n_instance
    instance = per_image[:b].mean()
    if pred.shape[0] == b:
        return alpha * instance, instance, None
    prior = per_image[b:].mean()
    return alpha * instance + beta * prior, instance, prior


def train_dreambooth(dataset: PreparedDataset, class_dir: Path | None, out_dir: Path,
                     config: TrainConfig, progress: ProgressFn | None = None,
                     should_stop: StopFn | None = None,
                     on_checkpoint: Callable[[Path], None] | None = None,
                     resume_from: Path | None = None,
                     components: SDXLComponents | None = None) -> TrainResult:
    """Train on ``dataset`` (and class images in ``class_dir``); weights go to ``out_dir/weights``.

    ``components`` replaces loading ``config.base_model`` (benchmarks pass SDXL-shaped random
    weights); training modifies and moves them. ``should_stop`` is checked after every step:
    when it returns True a checkpoint is written and :class:`Interrupted` is raised.
    """
    from accelerate import Accelerator

    started = time.perf_counter()
    out_dir = Path(out_dir)
    device = resolve_device(config.device)
    precision = resolve_precision(device, config.mixed_precision)
    accelerator = Accelerator(mixed_precision=precision, cpu=device.type == "cpu")
    device = accelerator.device
    weight_dtype = torch_dtype(precision)
    if device.type == "cuda":  # process-wide switches; the worker runs one job at a time
        torch.backends.cuda.matmul.allow_tf32 = config.allow_tf32
        torch.backends.cudnn.allow_tf32 = config.allow_tf32
    total = steps_for(dataset.n_photos, config)
    setup = build_training(dataset, class_dir, config, device, weight_dtype, components,
                           autocast=accelerator.autocast)
    parts, trainable, batches, scheduler = setup.parts, setup.trainable, setup.batches, setup.scheduler
    instances, classes = batches.instances, batches.classes

    optimizer = make_optimizer(trainable, config, device)
    models = accelerator.prepare(*trainable.modules, optimizer)
    optimizer = models[-1]
    fingerprint = config.fingerprint() | {"total_steps": total}
    start, losses = 0, []
    ckpt = load_checkpoint(Path(resume_from), map_location=device) if resume_from is not None else None
    refusal = resume_refusal(ckpt, fingerprint) if ckpt is not None else None
    if ckpt is not None and refusal is not None:
        # Not a crash: the same prepared data, trained again from the start (no crash loop).
        log.warning("train_restarted", reason=refusal, checkpoint=Path(str(resume_from)).name)
        ckpt = None
    if ckpt is not None:
        with torch.no_grad():
            for name, p in trainable.named.items():
                p.copy_(ckpt.weights[name].to(p.device, p.dtype))
        optimizer.load_state_dict(ckpt.optimizer)
        if ckpt.scaler is not None and accelerator.scaler is not None:
            accelerator.scaler.load_state_dict(ckpt.scaler)
        start, losses = ckpt.step, list(ckpt.losses)
        log.info("train.resumed", step=start, total=total)

    # The checkpoint choice's candidates (50% and 75%; the last is the result): checkpointed
    # whatever the cadence, kept, and for LoRA carrying their weights in the generation format.
    candidates = candidate_steps(total) if config.checkpoint_every else ()

    def candidate_weights(folder: Path, step: int) -> None:
        weights = save_trained_weights(folder / CANDIDATE_WEIGHTS, config.method, accelerator.unwrap_model(
            trainable.unet), None, weight_dtype)
        TrainResult(method=config.method, weights_dir=weights, base_model=str(config.base_model),
                    instance_prompt=dataset.instance_prompt, steps=step,
                    train_text_encoder=False).save()

    def checkpoint(step: int) -> Path:
        lora_candidate = step in candidates and config.method == "lora" and not config.train_text_encoder
        path = save_checkpoint(out_dir, step, trainable_state(trainable), optimizer.state_dict(),
                               accelerator.scaler.state_dict() if accelerator.scaler else None,
                               fingerprint, losses, keep=config.keep_checkpoints, pinned=candidates,
                               extra=(lambda folder: candidate_weights(folder, step)) if lora_candidate else None)
        if on_checkpoint is not None:
            on_checkpoint(path)
        return path

    log.info("train.start", method=config.method, steps=total, start=start, device=device.type,
             precision=precision, images=len(instances), class_images=len(classes or []),
             batch_size=config.batch_size, instance_samples=total * config.batch_size)
    for m in trainable.modules:
        m.train()
    for step in range(start, total):
        gen = step_generator(config.seed, step, device)
        with accelerator.autocast():
            batch = batches.batch(step, gen)
            loss, inst, prior = dreambooth_loss(trainable.unet, scheduler, batch, gen, dataset.resolution,
                                                config.instance_loss_weight, config.prior_loss_weight,
                                                config.noise_offset, config.snr_gamma)
        accelerator.backward(loss)
        if config.max_grad_norm > 0:
            accelerator.clip_grad_norm_(trainable.params, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        losses.append(float(loss.detach()))
        report(progress, Progress("train", done, total, losses[-1], {
            "instance_loss": float(inst.detach()),
            "prior_loss": None if prior is None else float(prior.detach())}))
        last_saved = None
        if config.checkpoint_every and (done % config.checkpoint_every == 0 or done in candidates) and done < total:
            last_saved = checkpoint(done)
        if should_stop is not None and should_stop() and done < total:
            path = last_saved or checkpoint(done)
            log.info("train.interrupted", step=done, total=total)
            raise Interrupted(f"training stopped at step {done}/{total}; checkpoint {path.name}")

    unwrap = accelerator.unwrap_model
    optimizer = models = None  # free the Adam moments before writing the weights
    weights_dir = save_trained_weights(
        out_dir / "weights", config.method, unwrap(trainable.unet),
        (unwrap(parts.text_encoder), unwrap(parts.text_encoder_2)) if config.train_text_encoder else None,
        weight_dtype)
    result = TrainResult(method=config.method, weights_dir=weights_dir, base_model=str(config.base_model),
                         instance_prompt=dataset.instance_prompt, steps=total,
                         train_text_encoder=config.train_text_encoder,
                         final_loss=losses[-1] if losses else None, losses=losses,
                         seconds=time.perf_counter() - started)
    result.save()
    log.info("train.done", steps=total, seconds=round(result.seconds, 1))
    return result

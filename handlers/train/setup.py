"""Everything a training loop needs before its first step, built the same way for every caller.

Why separate: ``train_dreambooth`` and the tests that pin the loss (fixed batch, the prior
weight's effect on the gradient) must exercise the same models, caches and batches. Caching
runs here: captions through both text encoders once, images through the VAE once; then the
encoders and the VAE leave the accelerator, so training holds only the UNet and its optimizer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from handlers.prepare import PreparedDataset
from handlers.sdxl.configs import SDXLComponents
from handlers.sdxl.loading import load_sdxl_components
from handlers.train.data import LatentSource, StepBatches, TextSource, image_files
from handlers.train.models import Trainable, prepare_trainable

if TYPE_CHECKING:
    from handlers.train.config import TrainConfig


@dataclass
class TrainingSetup:
    parts: SDXLComponents
    trainable: Trainable
    batches: StepBatches
    scheduler: Any  # DDPMScheduler: the noise schedule of the base model


def build_training(dataset: PreparedDataset, class_dir: Path | None, config: "TrainConfig",
                   device: torch.device, weight_dtype: torch.dtype,
                   components: SDXLComponents | None = None,
                   autocast: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
                   ) -> TrainingSetup:
    """Load (or take) the models, mark what trains, cache latents and text embeddings."""
    from diffusers import DDPMScheduler

    if dataset.resolution != config.resolution:
        raise ValueError(f"dataset prepared at {dataset.resolution} px, config trains at {config.resolution}")
    use_prior = config.prior_loss_weight > 0
    if use_prior and class_dir is None:
        raise ValueError("prior_loss_weight > 0 needs class images")
    parts = components or load_sdxl_components(config.base_model, weight_dtype)
    trainable = prepare_trainable(parts, config, device, weight_dtype)

    cache_text = config.cache_text_embeddings and not config.train_text_encoder
    text = TextSource([parts.text_encoder, parts.text_encoder_2], [parts.tokenizer, parts.tokenizer_2],
                      device, cache=cache_text)
    with autocast():
        text.precompute(sorted({i.caption for i in dataset.images} | {dataset.class_prompt}))
    if cache_text:  # the encoders are no longer needed on the device
        parts.text_encoder.to("cpu")
        parts.text_encoder_2.to("cpu")

    parts.vae.to(device)
    instances = LatentSource([i.path for i in dataset.images], parts.vae, dataset.resolution, device,
                             cache=config.cache_latents)
    classes = None
    if use_prior and class_dir is not None:
        classes = LatentSource(image_files(class_dir, config.num_class_images), parts.vae,
                               dataset.resolution, device, cache=config.cache_latents)
        if len(classes) == 0:
            raise ValueError(f"no class images in {class_dir}")
    if config.cache_latents:
        parts.vae.to("cpu")
    batches = StepBatches(instances, [i.caption for i in dataset.images], classes,
                          dataset.class_prompt, text, config.batch_size, config.seed,
                          [i.size_conditioning(dataset.resolution) for i in dataset.images],
                          config.class_batch_size)
    return TrainingSetup(parts=parts, trainable=trainable, batches=batches,
                         scheduler=DDPMScheduler.from_config(parts.scheduler_config))

"""What each DreamBooth step sees: latents, text embeddings, micro-conditioning, noise.

Why stateless: every random draw of step ``s`` (which instance and class image, the latent
sample, the noise, the timesteps) comes from generators seeded by ``(seed, s)``. A run resumed
at step ``s`` therefore sees exactly the batches an uninterrupted run would, with no RNG state
to save. Caching encodes each image once through the VAE and each caption once through both
text encoders; without caching (the naive baseline) the same values are recomputed every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_CLASS_STREAM = 7919  # separates the class-image order from the instance order


def image_files(folder: Path, limit: int | None = None) -> list[Path]:
    """Images of ``folder`` in name order (the class cache names them by index)."""
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return files if limit is None else files[:limit]


def load_pixels(path: Path, resolution: int) -> torch.Tensor:
    """(3, H, W) float in [-1, 1]; prepared images are already square at ``resolution``."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (resolution, resolution):
            im = im.resize((resolution, resolution), Image.Resampling.LANCZOS)
        arr = np.asarray(im, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def step_index(seed: int, step: int, n: int, stream: int = 0) -> int:
    """Item of an n-item epoch shuffled per epoch: a pure function of (seed, step)."""
    epoch, pos = divmod(step, n)
    g = torch.Generator().manual_seed(seed * 1_000_003 + stream * 7_777 + epoch)
    return int(torch.randperm(n, generator=g)[pos])


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """The generator for one step's latent sample, noise and timesteps."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + 104_729 + step)


def time_ids(resolution: int, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """SDXL micro-conditioning of an image made at the target size: what class images are and
    what generation asks for (original = target, no crop)."""
    row = torch.tensor([resolution, resolution, 0, 0, resolution, resolution], dtype=dtype, device=device)
    return row.repeat(batch, 1)


def crop_time_ids(conditions: Sequence[tuple[int, int, int, int]], resolution: int) -> torch.Tensor:
    """SDXL micro-conditioning per image: (original h, original w, crop top, crop left, target h,
    target w), the first four being the crop's true size and position in its photo
    (:meth:`handlers.prepare.PreparedImage.size_conditioning`). float32, on the CPU."""
    return torch.tensor([[*c, resolution, resolution] for c in conditions], dtype=torch.float32)


def encode_prompt(text_encoders: Sequence[Any], tokenizers: Sequence[Any], prompt: str,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL conditioning: penultimate hidden states of both encoders concatenated, pooled from #2."""
    embeds = []
    pooled = None
    for encoder, tokenizer in zip(text_encoders, tokenizers):
        ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors="pt").input_ids.to(device)
        out = encoder(ids, output_hidden_states=True)
        pooled = out[0]  # the projected pooled output of the last encoder is what SDXL uses
        embeds.append(out.hidden_states[-2])
    assert pooled is not None
    return torch.cat(embeds, dim=-1), pooled


@dataclass
class LatentDist:
    """Mean and std of the VAE's latent distribution for one image (already scaled)."""

    mean: torch.Tensor
    std: torch.Tensor


class LatentSource:
    """Latents of a list of images: cached once, or re-encoded on every request (naive)."""

    def __init__(self, paths: Sequence[Path], vae: Any, resolution: int, device: torch.device,
                 cache: bool) -> None:
        self.paths = list(paths)
        self.vae = vae
        self.resolution = resolution
        self.device = device
        self.scale = float(vae.config.scaling_factor)
        self.cached: list[LatentDist] | None = None
        if cache:
            self.cached = [self._encode(p) for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    @torch.no_grad()
    def _encode(self, path: Path) -> LatentDist:
        pixels = load_pixels(path, self.resolution).unsqueeze(0).to(self.device, self.vae.dtype)
        dist = self.vae.encode(pixels).latent_dist
        return LatentDist(mean=dist.mean.float() * self.scale, std=dist.std.float() * self.scale)

    def sample(self, index: int, generator: torch.Generator) -> torch.Tensor:
        dist = self.cached[index] if self.cached is not None else self._encode(self.paths[index])
        noise = torch.randn(dist.mean.shape, generator=generator, device=self.device)
        return dist.mean + dist.std * noise


class TextSource:
    """Prompt embeddings: cached once per distinct caption, or recomputed (naive / trained encoders)."""

    def __init__(self, text_encoders: Sequence[Any], tokenizers: Sequence[Any],
                 device: torch.device, cache: bool) -> None:
        self.text_encoders = list(text_encoders)
        self.tokenizers = list(tokenizers)
        self.device = device
        self.cache = cache
        self._cached: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def precompute(self, prompts: Sequence[str]) -> None:
        """Encode every prompt now so the text encoders can leave the device."""
        if self.cache:
            with torch.no_grad():
                for p in prompts:
                    self._cached[p] = encode_prompt(self.text_encoders, self.tokenizers, p, self.device)

    def embed(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        if prompt in self._cached:
            return self._cached[prompt]
        return encode_prompt(self.text_encoders, self.tokenizers, prompt, self.device)


@dataclass
class Batch:
    latents: torch.Tensor  # (B, 4, h, w), instance rows first, then class rows
    prompt_embeds: torch.Tensor  # (B, 77, D)
    pooled: torch.Tensor  # (B, P)
    n_instance: int
    time_ids: torch.Tensor | None = None  # (B, 6) SDXL size conditioning; None: all at the target size


class StepBatches:
    """The batch of step ``s``: ``batch_size`` instance images plus ``class_batch_size`` class
    images (None: as many as instance images, diffusers' way)."""

    def __init__(self, instances: LatentSource, captions: Sequence[str], classes: LatentSource | None,
                 class_prompt: str, text: TextSource, batch_size: int, seed: int,
                 conditions: Sequence[tuple[int, int, int, int]] | None = None,
                 class_batch_size: int | None = None) -> None:
        """``conditions``: each instance image's (original h, w, crop top, left); None: every
        image at the target size, uncropped."""
        self.instances, self.captions, self.classes = instances, list(captions), classes
        self.class_prompt, self.text = class_prompt, text
        self.batch_size, self.seed = batch_size, seed
        self.class_batch_size = batch_size if class_batch_size is None else class_batch_size
        res = instances.resolution
        self.instance_ids = crop_time_ids(conditions or [(res, res, 0, 0)] * len(instances), res)
        self.class_ids = crop_time_ids([(res, res, 0, 0)], res)

    def batch(self, step: int, generator: torch.Generator) -> Batch:
        lat, emb, pool, ids = [], [], [], []
        for k in range(self.batch_size):
            i = step_index(self.seed, step * self.batch_size + k, len(self.instances))
            lat.append(self.instances.sample(i, generator))
            e, p = self.text.embed(self.captions[i])
            emb.append(e)
            pool.append(p)
            ids.append(self.instance_ids[i])
        if self.classes is not None:
            for k in range(self.class_batch_size):
                j = step_index(self.seed, step * self.class_batch_size + k, len(self.classes), _CLASS_STREAM)
                lat.append(self.classes.sample(j, generator))
                e, p = self.text.embed(self.class_prompt)
                emb.append(e)
                pool.append(p)
                ids.append(self.class_ids[0])
        latents = torch.cat(lat)
        return Batch(latents=latents, prompt_embeds=torch.cat(emb), pooled=torch.cat(pool),
                     n_instance=self.batch_size, time_ids=torch.stack(ids).to(latents.device))

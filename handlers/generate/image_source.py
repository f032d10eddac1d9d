"""Where generated images come from: a diffusers pipeline, or anything shaped like one.

Why a seam here: the selection loop must be testable with real face photos standing in for
generated images, and benches must time the exact production sampling call. Both go through
:class:`ImageSource`; production wraps the pipeline in :class:`DiffusionSource`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from handlers.generate.config import SAMPLERS

if TYPE_CHECKING:
    from handlers.generate.config import GenerateConfig


@dataclass(frozen=True)
class ImageRequest:
    """One image to make: which prompt, which attempt, the rendered text and its seed."""

    prompt_index: int
    attempt: int
    prompt: str
    seed: int


@runtime_checkable
class ImageSource(Protocol):
    """Anything that turns a batch of requests into RGB uint8 images, in order."""

    def generate_images(self, requests: Sequence[ImageRequest]) -> list[np.ndarray]: ...




def use_sampler(pipeline: Any, sampler: str) -> None:
    """Swap ``pipeline.scheduler`` for ``sampler`` (same noise schedule); no-op for "pipeline"."""
    if sampler == "pipeline" or not hasattr(pipeline, "scheduler"):
        return
    import diffusers

    name, options = SAMPLERS[sampler]
    current = pipeline.scheduler
    if type(current).__name__ == name and all(current.config.get(k) == v for k, v in options.items()):
        return
    pipeline.scheduler = getattr(diffusers, name).from_config(current.config, **options)


def speed_up_unet(pipeline: Any, channels_last: bool, compile_unet: bool) -> None:
    """Channels-last convolutions (CUDA only) and ``torch.compile`` of the UNet (where asked).

    The compile is ``fullgraph``: a graph break would silently keep most of the eager cost, so
    it fails loudly instead. Compiled graphs are reused for the next job's UNet in the same
    process (same class and shapes), so a long-running worker pays the compile once
    (``bench/compile_unet.py`` measures both).
    """
    import torch

    unet = getattr(pipeline, "unet", None)
    if unet is None:
        return
    if channels_last and getattr(unet, "device", torch.device("cpu")).type == "cuda":
        unet.to(memory_format=torch.channels_last)
    if compile_unet and not hasattr(unet, "_orig_mod"):
        pipeline.unet = torch.compile(unet, fullgraph=True)


class DiffusionSource:
    """A diffusers text-to-image pipeline as an :class:`ImageSource`.

    Noise comes from CPU generators, one per image, so an image depends on its seed and not
    on the device or on which other images shared its batch. The sampler named in the config
    replaces the pipeline's scheduler (``regenerate`` goes through here too, so a remade image
    uses the sampler it was made with).
    """

    def __init__(self, pipeline: Any, config: GenerateConfig, negative_prompt: str) -> None:
        self.pipeline = pipeline
        self.config = config
        self.negative_prompt = negative_prompt
        if hasattr(pipeline, "set_progress_bar_config"):
            pipeline.set_progress_bar_config(disable=True)
        vae = getattr(pipeline, "vae", None)
        if vae is not None and hasattr(vae, "enable_slicing"):
            vae.enable_slicing()  # decode a batch image by image: 1024 px batches fit in memory
        use_sampler(pipeline, config.sampler)
        speed_up_unet(pipeline, config.channels_last, config.compile_unet)

    def generate_images(self, requests: Sequence[ImageRequest]) -> list[np.ndarray]:
        import torch

        if not requests:
            return []
        width, height = self.config.canvas
        out = self.pipeline(
            prompt=[r.prompt for r in requests],
            negative_prompt=[self.negative_prompt] * len(requests),
            num_inference_steps=self.config.steps,
            guidance_scale=self.config.guidance_scale,
            height=height, width=width,
            generator=[torch.Generator("cpu").manual_seed(r.seed) for r in requests],
            output_type="np",
        )
        return [np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8) for img in out.images]


def as_image_source(pipeline: Any, config: GenerateConfig, negative_prompt: str) -> ImageSource:
    """``pipeline`` itself when it already is an image source, else a :class:`DiffusionSource`."""
    if isinstance(pipeline, ImageSource):
        return pipeline
    return DiffusionSource(pipeline, config, negative_prompt)

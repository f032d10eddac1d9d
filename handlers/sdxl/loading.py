"""Loading an SDXL pipeline's parts through ``from_pretrained`` (Hub id or local folder).

Why one place: training loads the parts separately (it trains some and freezes others), the
generation stage loads a whole pipeline; both must pick the same fp16 weight variant on a GPU
and fall back to the full-precision files when a model (like the tiny test model) has none.
"""

from __future__ import annotations

from typing import Any

import torch

from handlers.sdxl.configs import SDXLComponents


def torch_dtype(mixed_precision: str) -> torch.dtype:
    """The frozen weights' dtype for an accelerate mixed-precision mode."""
    return {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[mixed_precision]


def weight_variant(dtype: torch.dtype) -> str | None:
    """SDXL repos ship half-precision files as the ``fp16`` variant (bf16 loads from them too)."""
    return "fp16" if dtype in (torch.float16, torch.bfloat16) else None


def from_pretrained_variant(cls: Any, path: str, *, variant: str | None, **kwargs: Any) -> Any:
    """``cls.from_pretrained`` with ``variant``; the default files if that variant is absent."""
    if variant is not None:
        try:
            return cls.from_pretrained(path, variant=variant, **kwargs)
        except (OSError, ValueError):
            pass
    return cls.from_pretrained(path, **kwargs)


def load_sdxl_components(base_model: str, dtype: torch.dtype) -> SDXLComponents:
    """UNet, VAE, both text encoders and tokenizers of ``base_model`` in ``dtype`` (VAE in fp32).

    The VAE stays fp32: SDXL's VAE overflows in fp16, and it only encodes each image once.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    variant = weight_variant(dtype)
    path = str(base_model)

    def load(cls: Any, sub: str, dt: torch.dtype) -> Any:
        return from_pretrained_variant(cls, path, variant=variant, subfolder=sub, dtype=dt)

    return SDXLComponents(
        unet=load(UNet2DConditionModel, "unet", dtype),
        vae=load(AutoencoderKL, "vae", torch.float32),
        text_encoder=load(CLIPTextModel, "text_encoder", dtype),
        text_encoder_2=load(CLIPTextModelWithProjection, "text_encoder_2", dtype),
        tokenizer=CLIPTokenizer.from_pretrained(path, subfolder="tokenizer"),
        tokenizer_2=CLIPTokenizer.from_pretrained(path, subfolder="tokenizer_2"),
        scheduler_config=dict(DDPMScheduler.load_config(path, subfolder="scheduler")),
    )

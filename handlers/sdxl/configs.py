"""SDXL-base-1.0's real architecture, written out as data, with random weights.

Why: speed and memory of training and sampling do not depend on the weights' values, but they
do depend on every layer's shape. GPU benchmarks build these modules directly on the device,
in the target dtype, instead of downloading 7 GB; tests build them on ``torch.device("meta")``
to check the parameter counts against the published model (UNet 2,567,463,684 parameters).
Tokenizers are the tiny hand-written CLIP vocabulary: only the sequence length (77) matters
for speed.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# unet/config.json of stabilityai/stable-diffusion-xl-base-1.0 (architecture fields).
SDXL_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "only_cross_attention": False,
    "block_out_channels": (320, 640, 1280),
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 2048,
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "resnet_time_scale_shift": "default",
    "time_embedding_type": "positional",
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
}

# vae/config.json (the SDXL VAE; scaling factor 0.13025, upcast to fp32 for decoding).
SDXL_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 1024,
    "scaling_factor": 0.13025,
    "force_upcast": True,
}

# text_encoder/config.json: OpenAI CLIP ViT-L/14 text tower.
SDXL_TEXT_ENCODER_CONFIG: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 768,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}

# text_encoder_2/config.json: OpenCLIP ViT-bigG/14 text tower (with projection).
SDXL_TEXT_ENCODER_2_CONFIG: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 1280,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}

# Published parameter counts, for the tests.
SDXL_PARAM_COUNTS: dict[str, int] = {
    "unet": 2_567_463_684,
    "vae": 83_653_863,
    "text_encoder": 123_060_480,
    "text_encoder_2": 694_659_840,
}


@dataclass
class SDXLComponents:
    """The modules a training or sampling run needs; what ``from_pretrained`` would give."""

    unet: Any
    vae: Any
    text_encoder: Any
    text_encoder_2: Any
    tokenizer: Any
    tokenizer_2: Any
    scheduler_config: dict[str, Any]


@contextlib.contextmanager
def _default_device_dtype(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Create parameters directly on ``device`` in ``dtype`` (no CPU copy, no cast pass)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device:
            yield
    finally:
        torch.set_default_dtype(previous)


def _tokenizers() -> tuple[Any, Any]:
    """CLIP tokenizers over the tiny vocabulary (ids stay below SDXL's 49408)."""
    from transformers import CLIPTokenizer

    from handlers.sdxl.tokenizer import build_clip_vocab, write_tokenizer

    vocab, merges = build_clip_vocab()
    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer(Path(tmp) / "t1", vocab, merges, pad="<|endoftext|>")
        write_tokenizer(Path(tmp) / "t2", vocab, merges, pad="!")
        return (CLIPTokenizer.from_pretrained(Path(tmp) / "t1"),
                CLIPTokenizer.from_pretrained(Path(tmp) / "t2"))


def sdxl_scheduler_config() -> dict[str, Any]:
    """scheduler/scheduler_config.json of SDXL base (EulerDiscrete, scaled-linear betas)."""
    return {
        "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
        "num_train_timesteps": 1000, "prediction_type": "epsilon", "steps_offset": 1,
        "timestep_spacing": "leading", "clip_sample": False, "sample_max_value": 1.0,
    }


def build_sdxl_components(device: torch.device | str = "meta",
                          dtype: torch.dtype = torch.float32) -> SDXLComponents:
    """SDXL-shaped UNet, VAE and both text encoders with random weights on ``device``."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    device = torch.device(device)
    with _default_device_dtype(device, dtype):
        unet = UNet2DConditionModel(**SDXL_UNET_CONFIG)
        vae = AutoencoderKL(**SDXL_VAE_CONFIG)
        text_encoder = CLIPTextModel(CLIPTextConfig(**SDXL_TEXT_ENCODER_CONFIG))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**SDXL_TEXT_ENCODER_2_CONFIG))
    tokenizer, tokenizer_2 = _tokenizers()
    return SDXLComponents(unet=unet, vae=vae, text_encoder=text_encoder,
                          text_encoder_2=text_encoder_2, tokenizer=tokenizer,
                          tokenizer_2=tokenizer_2, scheduler_config=sdxl_scheduler_config())


def build_sdxl_pipeline(device: torch.device | str, dtype: torch.dtype) -> Any:
    """An SDXL-shaped ``StableDiffusionXLPipeline`` with random weights (for sampling benches)."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    parts = build_sdxl_components(device, dtype)
    return StableDiffusionXLPipeline(
        vae=parts.vae, text_encoder=parts.text_encoder, text_encoder_2=parts.text_encoder_2,
        tokenizer=parts.tokenizer, tokenizer_2=parts.tokenizer_2, unet=parts.unet,
        scheduler=EulerDiscreteScheduler.from_config(parts.scheduler_config),
    )


def parameter_count(module: torch.nn.Module) -> int:
    """Number of parameters (works on meta tensors)."""
    return sum(p.numel() for p in module.parameters())

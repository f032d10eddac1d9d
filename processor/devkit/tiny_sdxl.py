"""A tiny SDXL-architecture pipeline built from configs with random weights.

Why: nothing can be downloaded from a model hub here or in CI, yet every code path must go
through the same ``from_pretrained`` loading as production. This module writes a real
diffusers SDXL folder (two CLIP tokenizers with a hand-written byte-level BPE vocabulary, two
text encoders, UNet, VAE, scheduler) that loads with ``StableDiffusionXLPipeline.from_pretrained``.
Architecture and tokenizer *structure* match SDXL; only the sizes are small.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from handlers.sdxl.tokenizer import build_clip_vocab, vocab_fingerprint, write_tokenizer

#: Bump when the builder changes what it writes in a way the spec and vocabulary do not show.
BUILD_REVISION = 2


@dataclass(frozen=True)
class TinySDXLSpec:
    """Sizes of the tiny model. Latents are 1/8 of the image side, as in SDXL."""

    resolution: int = 128
    unet_channels: tuple[int, int] = (32, 64)
    text_hidden: int = 32
    vocab_extra: int = 0
    seed: int = 0


def model_version(spec: TinySDXLSpec | None = None) -> str:
    """A short digest of everything that decides the built folder: spec, vocabulary, revision.

    Why: a cached tiny model used to be reused forever once built, so a fixed tokenizer (or
    any builder change) never reached a machine that already had one. The version is part of
    the cached folder's name instead, so a changed builder builds beside the old folder.
    """
    vocab, merges = build_clip_vocab()
    doc = {"spec": asdict(spec or TinySDXLSpec()), "vocab": vocab_fingerprint(vocab, merges),
           "revision": BUILD_REVISION}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]


def tiny_model_dir(cache_root: Path, spec: TinySDXLSpec | None = None) -> Path:
    """``<cache_root>/tiny-sdxl-<version>``: where this builder's model is cached."""
    return Path(cache_root) / f"tiny-sdxl-{model_version(spec)}"


def ensure_tiny_sdxl(cache_root: Path, spec: TinySDXLSpec | None = None) -> Path:
    """The cached tiny model of this builder version under ``cache_root``, built if missing.

    Built in a private temporary folder and renamed into place, so a concurrent reader (a
    parallel test session, another engineer's) never sees a half-written model; older
    versions beside it are left alone.
    """
    target = tiny_model_dir(cache_root, spec)
    if (target / "model_index.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-sdxl-", dir=target.parent))
    try:
        build_tiny_sdxl(staging / "model", spec)
        try:
            os.rename(staging / "model", target)
        except OSError:
            # Another process won the race; its folder is complete (it was renamed whole).
            if not (target / "model_index.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def build_tiny_sdxl(out_dir: Path, spec: TinySDXLSpec | None = None) -> Path:
    """Write a tiny SDXL pipeline to ``out_dir`` (idempotent) and return the folder."""
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
    )

    spec = spec or TinySDXLSpec()
    out_dir = Path(out_dir)
    if (out_dir / "model_index.json").exists():
        return out_dir

    vocab, merges = build_clip_vocab()
    torch.manual_seed(spec.seed)
    h = spec.text_hidden
    text_cfg = CLIPTextConfig(
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"], hidden_size=h, intermediate_size=2 * h,
        num_attention_heads=4, num_hidden_layers=3, vocab_size=len(vocab),
        max_position_embeddings=77, projection_dim=h, hidden_act="quick_gelu",
    )
    text_encoder = CLIPTextModel(text_cfg)
    text_encoder_2 = CLIPTextModelWithProjection(text_cfg)
    time_dim = 8
    unet = UNet2DConditionModel(
        sample_size=spec.resolution // 8,
        in_channels=4, out_channels=4,
        block_out_channels=spec.unet_channels,
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        transformer_layers_per_block=(1, 1),
        use_linear_projection=True,
        cross_attention_dim=2 * h,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=6 * time_dim + h,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        block_out_channels=(16, 16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=8, sample_size=spec.resolution,
        scaling_factor=0.13025,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        steps_offset=1, timestep_spacing="leading", num_train_timesteps=1000,
    )
    tmp_tok = out_dir / "_tok"
    write_tokenizer(tmp_tok / "tokenizer", vocab, merges, pad="<|endoftext|>")
    write_tokenizer(tmp_tok / "tokenizer_2", vocab, merges, pad="!")
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
        tokenizer=CLIPTokenizer.from_pretrained(tmp_tok / "tokenizer"),
        tokenizer_2=CLIPTokenizer.from_pretrained(tmp_tok / "tokenizer_2"),
        unet=unet, scheduler=scheduler,
    )
    from transformers.utils import logging as transformers_logging

    shown = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # its "Writing model shards" bars, one per text encoder
    try:
        pipe.save_pretrained(out_dir)
    finally:
        if shown:
            transformers_logging.enable_progress_bar()
    for sub in ("tokenizer", "tokenizer_2"):
        for f in (tmp_tok / sub).iterdir():
            f.unlink()
        (tmp_tok / sub).rmdir()
    tmp_tok.rmdir()
    return out_dir


def main() -> None:  # pragma: no cover - convenience entry point
    import sys

    print(ensure_tiny_sdxl(Path(sys.argv[1] if len(sys.argv) > 1 else ".cache")))


if __name__ == "__main__":  # pragma: no cover
    main()

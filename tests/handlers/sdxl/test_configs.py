"""SDXL-shaped random models: the published architecture, checked by parameter count."""

from __future__ import annotations

import pytest
import torch

from handlers.sdxl.configs import (
    SDXL_TEXT_ENCODER_2_CONFIG,
    SDXL_TEXT_ENCODER_CONFIG,
    SDXL_UNET_CONFIG,
    build_sdxl_components,
    parameter_count,
)

# Published parameter counts of stabilityai/stable-diffusion-xl-base-1.0's components.
PUBLISHED = {"unet": 2_567_463_684, "vae": 83_653_863,
             "text_encoder": 123_060_480, "text_encoder_2": 694_659_840}


@pytest.fixture(scope="module")
def meta_components():
    return build_sdxl_components(torch.device("meta"), torch.float32)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_meta_build_has_the_published_parameter_count(meta_components, name):
    assert parameter_count(getattr(meta_components, name)) == PUBLISHED[name]


def test_meta_build_allocates_no_memory(meta_components):
    assert all(p.device.type == "meta" for p in meta_components.unet.parameters())


def test_unet_conditioning_widths_match_the_two_text_encoders():
    te1, te2 = SDXL_TEXT_ENCODER_CONFIG["hidden_size"], SDXL_TEXT_ENCODER_2_CONFIG["hidden_size"]
    assert SDXL_UNET_CONFIG["cross_attention_dim"] == te1 + te2
    # pooled text embedding (te2 projection) + 6 micro-conditioning ids x time embedding width
    assert SDXL_UNET_CONFIG["projection_class_embeddings_input_dim"] == (
        SDXL_TEXT_ENCODER_2_CONFIG["projection_dim"] + 6 * SDXL_UNET_CONFIG["addition_time_embed_dim"])


def test_build_uses_the_requested_dtype_and_restores_the_default(meta_components):
    parts = build_sdxl_components(torch.device("meta"), torch.bfloat16)
    assert parts.unet.dtype == torch.bfloat16
    assert torch.get_default_dtype() == torch.float32


def test_tokenizers_pad_to_sdxl_sequence_length(meta_components):
    ids = meta_components.tokenizer("a photo of a person", padding="max_length",
                                    max_length=77).input_ids
    assert len(ids) == 77 and max(ids) < SDXL_TEXT_ENCODER_CONFIG["vocab_size"]

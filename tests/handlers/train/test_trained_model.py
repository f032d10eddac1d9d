"""Trained weights: what training saves is what generation loads, through ``from_pretrained``."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel

from handlers.train.config import TrainConfig
from handlers.train.dreambooth import train_dreambooth
from handlers.train.models import UNET_LORA_TARGETS, add_lora
from handlers.train.trained_model import (
    TrainResult,
    load_trained_pipeline,
    lora_modules,
    save_trained_weights,
)
from tests.fixtures.models import TINY_RESOLUTION


def unet_inputs(unet) -> tuple:
    g = torch.Generator().manual_seed(0)
    size = TINY_RESOLUTION // 8
    cond_dim = unet.config.cross_attention_dim
    pooled = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
    return (torch.randn(1, 4, size, size, generator=g), torch.tensor([500]),
            torch.randn(1, 77, cond_dim, generator=g),
            {"text_embeds": torch.randn(1, pooled, generator=g),
             "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])})


@torch.no_grad()
def predict(unet) -> torch.Tensor:
    x, t, cond, added = unet_inputs(unet)
    return unet(x, t, encoder_hidden_states=cond, added_cond_kwargs=added).sample


def nudge(module: torch.nn.Module, only: str | None = None) -> None:
    """Move the chosen weights off their initial values, as training would."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in module.named_parameters():
            if only is None or only in n:
                p.add_(0.05 * torch.randn(p.shape, generator=g))


def save_result(weights_dir: Path, method: str, base: Path) -> None:
    TrainResult(method=method, weights_dir=weights_dir, base_model=str(base),
                instance_prompt="a photo of wpz person", steps=1).save()


@pytest.mark.parametrize("fuse", [True, False])
def test_lora_weights_load_back_into_a_pipeline_that_predicts_like_the_trained_unet(
        fuse, tmp_path, tiny_model_dir):
    unet = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet")
    base_prediction = predict(unet)
    add_lora(unet, 4, UNET_LORA_TARGETS, seed=0)
    nudge(unet, only="lora_")
    trained_prediction = predict(unet)
    assert not torch.allclose(trained_prediction, base_prediction, atol=1e-4)
    save_trained_weights(tmp_path, "lora", unet, None, torch.float32)
    save_result(tmp_path, "lora", tiny_model_dir)
    pipe = load_trained_pipeline(str(tiny_model_dir), tmp_path, "cpu", torch.float32, fuse_lora=fuse)
    assert isinstance(pipe, StableDiffusionXLPipeline)
    torch.testing.assert_close(predict(pipe.unet), trained_prediction, rtol=1e-4, atol=1e-5)
    if fuse:  # the fused UNet samples through SDPA at every attention, as the base does
        kinds = {type(p).__name__ for p in pipe.unet.attn_processors.values()}
        assert kinds == {"AttnProcessor2_0"}, kinds


def test_full_fine_tune_weights_replace_the_base_unet(tmp_path, tiny_model_dir):
    unet = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet")
    nudge(unet)
    save_trained_weights(tmp_path, "full", unet, None, torch.float32)
    save_result(tmp_path, "full", tiny_model_dir)
    assert (tmp_path / "unet" / "config.json").exists()
    pipe = load_trained_pipeline(str(tiny_model_dir), tmp_path, "cpu", torch.float32)
    for (name, a), (_, b) in zip(unet.state_dict().items(), pipe.unet.state_dict().items()):
        assert a.equal(b), name


def test_trained_lora_generates_through_the_loaded_pipeline(tmp_path, tiny_model_dir, tiny_dataset,
                                                           tiny_class_dir):
    config = TrainConfig(base_model=str(tiny_model_dir), resolution=TINY_RESOLUTION, device="cpu",
                         mixed_precision="no", steps=2, learning_rate=1e-2, lora_rank=4,
                         checkpoint_every=0, batch_size=1)
    result = train_dreambooth(tiny_dataset, tiny_class_dir, tmp_path, config)
    assert TrainResult.load(result.weights_dir) == result
    base = StableDiffusionXLPipeline.from_pretrained(tiny_model_dir).unet
    pipe = load_trained_pipeline(str(tiny_model_dir), result.weights_dir, "cpu", torch.float32)
    assert not torch.allclose(predict(pipe.unet), predict(base), atol=1e-5)  # the weights moved
    pipe.set_progress_bar_config(disable=True)
    image = pipe(prompt=result.instance_prompt, num_inference_steps=1, height=TINY_RESOLUTION,
                 width=TINY_RESOLUTION, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (TINY_RESOLUTION, TINY_RESOLUTION)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_trained_text_encoders_are_saved_and_loaded_with_the_unet(method, tmp_path, tiny_model_dir,
                                                                   tiny_dataset, tiny_class_dir):
    config = TrainConfig(base_model=str(tiny_model_dir), method=method, resolution=TINY_RESOLUTION,
                         device="cpu", mixed_precision="no", steps=2, lora_rank=4, checkpoint_every=0,
                         train_text_encoder=True, learning_rate=1e-2 if method == "lora" else 1e-3,
                         text_encoder_lr=1e-2 if method == "lora" else 1e-3, batch_size=1)
    result = train_dreambooth(tiny_dataset, tiny_class_dir, tmp_path, config)
    base = StableDiffusionXLPipeline.from_pretrained(tiny_model_dir)
    pipe = load_trained_pipeline(str(tiny_model_dir), result.weights_dir, "cpu", torch.float32)
    ids = base.tokenizer(result.instance_prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        for name in ("text_encoder", "text_encoder_2"):
            before = getattr(base, name)(ids)[0]
            after = getattr(pipe, name)(ids)[0]
            assert not torch.allclose(before, after, atol=1e-6), name


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_unet_only_lora_loads_into_the_unet_alone_without_a_word_from_diffusers(tmp_path, tiny_model_dir):
    unet = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet")
    add_lora(unet, 4, UNET_LORA_TARGETS, seed=0)
    save_trained_weights(tmp_path, "lora", unet, None, torch.float32)
    save_result(tmp_path, "lora", tiny_model_dir)
    records = _Records()
    diffusers_log = logging.getLogger("diffusers")
    diffusers_log.addHandler(records)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)  # torch_dtype= is deprecated: dtype= is passed
            load_trained_pipeline(str(tiny_model_dir), tmp_path, "cpu", torch.float32)
    finally:
        diffusers_log.removeHandler(records)
    assert not [m for m in records.messages if "LoRA" in m or "deprecated" in m], records.messages


def test_lora_modules_are_the_ones_the_state_dict_has_keys_for() -> None:
    assert lora_modules({"unet.down.lora_A.weight": 0}) == ["unet"]
    assert lora_modules({"unet.a.lora_A": 0, "text_encoder_2.b.lora_A": 0}) == ["unet", "text_encoder_2"]
    assert lora_modules({"text_encoder.b.lora_B": 0}) == ["text_encoder"]

"""The trained weights on disk, and the pipeline that loads them: one format, two directions.

Why a module of its own: training writes, generation reads, and the two must agree. LoRA runs
save diffusers' LoRA safetensors (``pytorch_lora_weights.safetensors``, loadable by any
diffusers SDXL pipeline); full fine-tunes save ``unet/`` (and ``text_encoder*/`` when those
were trained) with ``save_pretrained``. ``train_result.json`` records which, so the loader
never guesses.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from handlers.sdxl.loading import from_pretrained_variant, weight_variant

RESULT_FILE = "train_result.json"
LORA_FILE = "pytorch_lora_weights.safetensors"
Method = Literal["lora", "full"]


@dataclass(frozen=True)
class TrainResult:
    """What a finished training run produced and how it got there."""

    method: Method
    weights_dir: Path
    base_model: str
    instance_prompt: str
    steps: int
    train_text_encoder: bool = False
    final_loss: float | None = None
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def save(self) -> Path:
        doc = asdict(self)
        doc["weights_dir"] = "."
        path = Path(self.weights_dir) / RESULT_FILE
        path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, weights_dir: Path) -> "TrainResult":
        doc = json.loads((Path(weights_dir) / RESULT_FILE).read_text(encoding="utf-8"))
        doc["weights_dir"] = Path(weights_dir)
        return cls(**doc)


def lora_state_dicts(unet: Any, text_encoders: tuple[Any, Any] | None) -> dict[str, dict[str, torch.Tensor]]:
    """The peft adapters of the UNet (and text encoders) as diffusers-format state dicts."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    out = {"unet_lora_layers": convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))}
    if text_encoders is not None:
        out["text_encoder_lora_layers"] = convert_state_dict_to_diffusers(
            get_peft_model_state_dict(text_encoders[0]))
        out["text_encoder_2_lora_layers"] = convert_state_dict_to_diffusers(
            get_peft_model_state_dict(text_encoders[1]))
    return out


def save_trained_weights(weights_dir: Path, method: Method, unet: Any,
                         text_encoders: tuple[Any, Any] | None, dtype: torch.dtype) -> Path:
    """Write the trained weights of ``unet`` (and ``text_encoders`` when trained) to ``weights_dir``.

    Full fine-tunes are cast to ``dtype`` (the dtype generation runs in) on the way out.
    """
    from diffusers import StableDiffusionXLPipeline

    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    if method == "lora":
        layers = {k: {n: t.detach().float().cpu() for n, t in v.items()}
                  for k, v in lora_state_dicts(unet, text_encoders).items()}
        StableDiffusionXLPipeline.save_lora_weights(weights_dir, **layers)
    else:
        for module, sub in [(unet, "unet")] + ([] if text_encoders is None else [
                (text_encoders[0], "text_encoder"), (text_encoders[1], "text_encoder_2")]):
            if module.dtype != dtype:
                module.to(dtype)
            module.save_pretrained(weights_dir / sub)
    return weights_dir


def load_base_pipeline(base_model: str, device: torch.device | str, dtype: torch.dtype) -> Any:
    """``StableDiffusionXLPipeline`` of ``base_model`` alone (LoRAs are loaded into it as adapters)."""
    from diffusers import StableDiffusionXLPipeline

    return from_pretrained_variant(StableDiffusionXLPipeline, str(base_model), variant=weight_variant(dtype),
                                   dtype=dtype).to(device)


def load_trained_pipeline(base_model: str, weights_dir: Path, device: torch.device | str,
                          dtype: torch.dtype, fuse_lora: bool = True, lora_scale: float = 1.0) -> Any:
    """``StableDiffusionXLPipeline`` of ``base_model`` with the trained weights, on ``device``.

    LoRA weights are fused into the base weights by default, at ``lora_scale`` (the checkpoint
    choice's scale, ``handlers/choose.py``): generation then runs at the base model's speed (no
    extra matmuls per attention projection).
    """
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    weights_dir = Path(weights_dir)
    result = TrainResult.load(weights_dir)
    variant = weight_variant(dtype)
    overrides: dict[str, Any] = {}
    if result.method == "full":
        overrides["unet"] = UNet2DConditionModel.from_pretrained(weights_dir / "unet", dtype=dtype)
        if (weights_dir / "text_encoder").is_dir():
            overrides["text_encoder"] = CLIPTextModel.from_pretrained(weights_dir / "text_encoder", dtype=dtype)
            overrides["text_encoder_2"] = CLIPTextModelWithProjection.from_pretrained(
                weights_dir / "text_encoder_2", dtype=dtype)
    pipe = from_pretrained_variant(StableDiffusionXLPipeline, str(base_model), variant=variant,
                                   dtype=dtype, **overrides)
    if result.method == "lora":
        load_lora(pipe, weights_dir)
        if fuse_lora:
            pipe.fuse_lora(lora_scale=lora_scale)
            pipe.unload_lora_weights()
    return pipe.to(device)


#: The pipeline's modules a LoRA file may hold weights for, by their key prefix in it.
LORA_TEXT_ENCODERS = ("text_encoder", "text_encoder_2")


def lora_modules(state_dict: dict[str, Any]) -> list[str]:
    """The modules a LoRA state dict has keys for: "unet" and the text encoders it trained."""
    return [name for name in ("unet", *LORA_TEXT_ENCODERS) if any(k.startswith(name + ".") for k in state_dict)]


def load_lora(pipe: Any, weights_dir: Path, adapter_name: str | None = None) -> list[str]:
    """Load the job's LoRA into only the modules it has weights for; returns their names.

    Why not ``pipe.load_lora_weights``: it offers the file to both text encoders as well and
    logs "No LoRA keys associated to CLIPTextModel..." for each one a UNet-only LoRA (the
    default: text encoders are frozen) does not train. The calls are the ones it makes.
    """
    state_dict, network_alphas, metadata = pipe.lora_state_dict(
        str(weights_dir), weight_name=LORA_FILE, unet_config=pipe.unet.config, return_lora_metadata=True)
    modules = lora_modules(state_dict)
    if "unet" in modules:
        pipe.load_lora_into_unet(state_dict, network_alphas=network_alphas, unet=pipe.unet, metadata=metadata,
                                 adapter_name=adapter_name, _pipeline=pipe)
    for name in LORA_TEXT_ENCODERS:
        if name in modules:
            pipe.load_lora_into_text_encoder(state_dict, network_alphas=network_alphas,
                                             text_encoder=getattr(pipe, name), prefix=name,
                                             lora_scale=pipe.lora_scale, metadata=metadata,
                                             adapter_name=adapter_name, _pipeline=pipe)
    return modules

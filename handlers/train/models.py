"""Which weights train, in which dtype, and the optimizer that moves them.

Why separate from the loop: the method decides everything here. LoRA freezes the base weights
(fp16/bf16 on a GPU) and trains rank-r adapters on the attention projections in fp32; the full
fine-tune trains every UNet weight in fp32 (master weights) under autocast. Optional text
encoder training follows the same rule. Gradient checkpointing trades recompute for memory;
8-bit Adam is used only where bitsandbytes is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
import torch

from handlers.sdxl.configs import SDXLComponents

if TYPE_CHECKING:
    from handlers.train.config import TrainConfig

log = structlog.get_logger(__name__)

UNET_LORA_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]
TEXT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


@dataclass
class Trainable:
    """The modules being trained and their trainable parameters, by stable name."""

    unet: Any
    modules: list[Any]
    named: dict[str, torch.nn.Parameter]

    @property
    def params(self) -> list[torch.nn.Parameter]:
        return list(self.named.values())


def add_lora(module: Any, rank: int, targets: list[str], seed: int) -> None:
    """Add rank-``rank`` adapters; their random init is drawn from ``seed`` (reproducible runs)."""
    from peft import LoraConfig

    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    lora = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=targets,
                      lora_dropout=0.0)
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        if hasattr(module, "set_adapters"):  # diffusers models: their own peft integration
            module.add_adapter(lora)
        else:  # transformers text encoders: peft directly (no transformers/peft version pin)
            from peft import inject_adapter_in_model

            inject_adapter_in_model(lora, module)


def _to(module: Any, device: torch.device | None, dtype: torch.dtype) -> None:
    """Move and cast only when needed (diffusers warns on every dtype cast)."""
    if device is not None:
        module.to(device)
    if module.dtype != dtype:
        module.to(dtype)


def prepare_trainable(parts: SDXLComponents, config: "TrainConfig", device: torch.device,
                      weight_dtype: torch.dtype) -> Trainable:
    """Freeze, adapt, cast and place the models for ``config.method``; return what trains."""
    unet, te1, te2 = parts.unet, parts.text_encoder, parts.text_encoder_2
    for m in (unet, te1, te2, parts.vae):
        m.requires_grad_(False)
    _to(parts.vae, None, torch.float32)
    trained = [("unet", unet)] + ([("text_encoder", te1), ("text_encoder_2", te2)]
                                  if config.train_text_encoder else [])
    for _, m in [("unet", unet), ("text_encoder", te1), ("text_encoder_2", te2)]:
        _to(m, device, weight_dtype)
    for name, m in trained:
        if config.method == "lora":
            add_lora(m, config.lora_rank, UNET_LORA_TARGETS if name == "unet" else TEXT_LORA_TARGETS,
                      config.seed)
            for n, p in m.named_parameters():
                if "lora_" in n:
                    p.data = p.data.float()  # fp32 master copy of the adapters only
                    p.requires_grad_(True)
        else:
            _to(m, None, torch.float32)
            m.requires_grad_(True)
        if config.gradient_checkpointing:
            if name == "unet":
                m.enable_gradient_checkpointing()
            else:
                m.gradient_checkpointing_enable()
    if config.channels_last and device.type == "cuda":
        unet.to(memory_format=torch.channels_last)
    named = {f"{name}.{n}": p for name, m in trained for n, p in m.named_parameters() if p.requires_grad}
    return Trainable(unet=unet, modules=[m for _, m in trained], named=named)


def trainable_state(trainable: Trainable) -> dict[str, torch.Tensor]:
    """The current values of every trainable parameter (what a checkpoint stores)."""
    return {n: p.detach() for n, p in trainable.named.items()}


def param_groups(trainable: Trainable, config: "TrainConfig") -> list[dict[str, Any]]:
    """The UNet's parameters at ``config.lr``; the text encoders' (when trained) in a group of
    their own at ``config.text_encoder_lr``: at the UNet's 1e-4 they would drift off the
    language the prompts speak (the published recipes train them at 5e-6..1e-5)."""
    unet = [p for n, p in trainable.named.items() if n.startswith("unet.")]
    text = [p for n, p in trainable.named.items() if not n.startswith("unet.")]
    groups = [{"params": unet, "lr": config.lr, "name": "unet"}]
    if text:
        groups.append({"params": text, "lr": config.text_encoder_lr, "name": "text_encoders"})
    return groups


def make_optimizer(trainable: Trainable, config: "TrainConfig", device: torch.device) -> torch.optim.Optimizer:
    """AdamW over :func:`param_groups`; bitsandbytes' 8-bit AdamW when asked for and installed (GPU only)."""
    groups = param_groups(trainable, config)
    if config.use_8bit_adam and device.type == "cuda":
        try:
            import bitsandbytes as bnb  # type: ignore[import-not-found]

            return bnb.optim.AdamW8bit(groups, lr=config.lr, weight_decay=config.weight_decay)
        except ImportError:
            log.warning("train.no_bitsandbytes", fallback="torch.optim.AdamW")
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, fused=fused)

"""Every knob of a DreamBooth run, and the learning rate each method defaults to."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

DEFAULT_LR = {"lora": 1e-4, "full": 2e-6}


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a DreamBooth run; the runtime fills it from ``Settings``."""

    base_model: str = "stabilityai/stable-diffusion-xl-base-1.0"
    method: Literal["lora", "full"] = "lora"
    steps: int | None = None  # overrides the steps-per-photo rule
    steps_per_photo: int = 80
    min_steps: int = 400
    max_steps: int = 1200
    learning_rate: float | None = None  # None: DEFAULT_LR[method]
    instance_loss_weight: float = 1.0  # alpha
    prior_loss_weight: float = 1.0  # beta (0 turns prior preservation and the class batch off)
    num_class_images: int = 100
    batch_size: int = 1  # instance images per step (plus as many class images)
    resolution: int = 1024
    mixed_precision: Literal["no", "fp16", "bf16"] = "bf16"
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    seed: int = 0
    gradient_checkpointing: bool = False  # on for 24 GB cards; costs ~40% speed (bench/train.py)
    channels_last: bool = True  # UNet memory format on CUDA (faster convolutions)
    allow_tf32: bool = True  # TF32 for the fp32 matmuls left under mixed precision (CUDA)
    use_8bit_adam: bool = False
    train_text_encoder: bool = False
    cache_latents: bool = True
    cache_text_embeddings: bool = True
    checkpoint_every: int = 100  # steps; 0 disables periodic checkpoints
    keep_checkpoints: int = 1
    lora_rank: int = 16
    max_grad_norm: float = 1.0
    weight_decay: float = 1e-2

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LR[self.method]

    def fingerprint(self) -> dict[str, Any]:
        """The fields a checkpoint must agree with to be resumed (not speed-only options)."""
        keep = ("method", "learning_rate", "instance_loss_weight", "prior_loss_weight", "batch_size",
                "resolution", "seed", "train_text_encoder", "lora_rank", "max_grad_norm", "weight_decay")
        d = asdict(self)
        return {k: d[k] for k in keep}

"""Every knob of a DreamBooth run, and the learning rate each method defaults to.

The defaults are the published recipes' (docs/recipe.md names the source of each): 2,000
instance samples in batches of 4 (one class image beside them), noise offset 0.0357, min-SNR weighting with gamma 5, and the
text encoders (when trained) in their own optimiser group at 5e-6.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

DEFAULT_LR = {"lora": 1e-4, "full": 2e-6}


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a DreamBooth run; the runtime fills it from ``Settings``."""

    base_model: str = "stabilityai/stable-diffusion-xl-base-1.0"
    method: Literal["lora", "full"] = "lora"
    steps: int | None = None  # overrides the step rule (handlers.train.dreambooth.steps_for)
    instance_samples_per_photo: int = 200  # the step rule: instance images seen per usable photo,
    min_instance_samples: int = 2000  # ... clamped to the published recipes' floor and the budget's ceiling
    max_instance_samples: int = 2000  # diffusers' 2,000; cog-sdxl's 4,000 where the GPU budget allows
    learning_rate: float | None = None  # None: DEFAULT_LR[method]
    text_encoder_lr: float = 5e-6  # the text encoders' own group, when train_text_encoder
    noise_offset: float = 0.0357  # 0: off
    snr_gamma: float | None = 5.0  # min-SNR loss weighting; None: plain MSE
    instance_loss_weight: float = 1.0  # alpha
    prior_loss_weight: float = 1.0  # beta (0 turns prior preservation and the class batch off)
    num_class_images: int = 100
    batch_size: int = 4  # instance images per step
    class_batch_size: int = 1  # class (prior) images per step: the prior's share of each step (docs/recipe.md)
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

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.class_batch_size < 1 or self.instance_samples_per_photo < 1:
            raise ValueError("batch_size, class_batch_size and instance_samples_per_photo must be at least 1")
        if not 1 <= self.min_instance_samples <= self.max_instance_samples:
            raise ValueError("need 1 <= min_instance_samples <= max_instance_samples")
        if self.noise_offset < 0 or (self.snr_gamma is not None and self.snr_gamma <= 0):
            raise ValueError("noise_offset must be >= 0 and snr_gamma > 0 (None: off)")
        if self.text_encoder_lr <= 0:
            raise ValueError("text_encoder_lr must be > 0")

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LR[self.method]

    def fingerprint(self) -> dict[str, Any]:
        """The fields a checkpoint must agree with to be resumed (not speed-only options)."""
        keep = ("method", "learning_rate", "instance_loss_weight", "prior_loss_weight", "batch_size", "class_batch_size",
                "resolution", "seed", "train_text_encoder", "lora_rank", "max_grad_norm", "weight_decay",
                "text_encoder_lr", "noise_offset", "snr_gamma")
        d = asdict(self)
        return {k: d[k] for k in keep}

    def recipe(self) -> dict[str, Any]:
        """The recipe's values as results.json records them (docs/recipe.md)."""
        return {"method": self.method, "unet_lr": self.lr, "batch_size": self.batch_size,
                "class_batch_size": self.class_batch_size if self.prior_loss_weight > 0 else 0,
                "instance_samples": {"per_photo": self.instance_samples_per_photo,
                                     "min": self.min_instance_samples, "max": self.max_instance_samples},
                "steps_override": self.steps, "noise_offset": self.noise_offset, "snr_gamma": self.snr_gamma,
                "train_text_encoder": self.train_text_encoder,
                "text_encoder_lr": self.text_encoder_lr if self.train_text_encoder else None,
                "lora_rank": self.lora_rank if self.method == "lora" else None,
                "prior_loss_weight": self.prior_loss_weight, "num_class_images": self.num_class_images}

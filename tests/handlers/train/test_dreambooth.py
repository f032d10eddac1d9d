"""DreamBooth training on the tiny SDXL: the step rule, the loss, progress and stop requests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from handlers.errors import Interrupted
from handlers.progress import Progress
from handlers.train.checkpoint import latest_checkpoint
from handlers.train.config import TrainConfig
from handlers.train.data import step_generator
from handlers.train.dreambooth import dreambooth_loss, steps_for, train_dreambooth
from handlers.train.setup import build_training
from tests.fixtures.models import TINY_RESOLUTION

CPU = torch.device("cpu")


def tiny_config(model_dir: Path, **kw) -> TrainConfig:
    base = dict(base_model=str(model_dir), resolution=TINY_RESOLUTION, mixed_precision="no",
                device="cpu", checkpoint_every=0, lora_rank=4, steps=4)
    return TrainConfig(**(base | kw))


def fixed_batch_loss(setup, config: TrainConfig, beta: float | None = None) -> torch.Tensor:
    """The loss of step 0's batch, noise and timesteps: identical on every call."""
    gen = step_generator(config.seed, 0, CPU)
    batch = setup.batches.batch(0, gen)
    loss, _, _ = dreambooth_loss(setup.trainable.unet, setup.scheduler, batch, gen, TINY_RESOLUTION,
                                 config.instance_loss_weight,
                                 config.prior_loss_weight if beta is None else beta)
    return loss


@pytest.mark.parametrize("n_photos, expected", [(1, 400), (5, 400), (10, 800), (15, 1200), (20, 1200)])
def test_steps_follow_80_per_photo_between_400_and_1200(n_photos, expected):
    assert steps_for(n_photos, TrainConfig()) == expected


def test_explicit_steps_override_the_rule_and_zero_photos_are_refused():
    assert steps_for(15, TrainConfig(steps=123)) == 123
    with pytest.raises(ValueError):
        steps_for(0, TrainConfig())


# LoRA adapts only the attention projections of the tiny UNet's two attention blocks, so it
# cannot fit a batch as far as a full fine-tune in a dozen steps: a 10% drop still shows it learns.
@pytest.mark.parametrize("method, lr, ratio", [("lora", 3e-2, 0.9), ("full", 5e-4, 0.5)])
def test_loss_falls_on_a_fixed_batch(method, lr, ratio, tiny_model_dir, tiny_dataset, tiny_class_dir):
    config = tiny_config(tiny_model_dir, method=method, learning_rate=lr, lora_rank=8)
    setup = build_training(tiny_dataset, tiny_class_dir, config, CPU, torch.float32)
    opt = torch.optim.AdamW(setup.trainable.params, lr=config.lr)
    losses = []
    for _ in range(12):
        loss = fixed_batch_loss(setup, config)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < ratio * losses[0], losses
    assert losses[-1] < min(losses[:3]), losses


def test_prior_weight_beta_scales_the_prior_term_of_the_gradient(tiny_model_dir, tiny_dataset,
                                                                 tiny_class_dir):
    config = tiny_config(tiny_model_dir, method="full")
    setup = build_training(tiny_dataset, tiny_class_dir, config, CPU, torch.float32)
    params = setup.trainable.params

    def grad(beta: float) -> torch.Tensor:
        for p in params:
            p.grad = None
        fixed_batch_loss(setup, config, beta).backward()
        return torch.cat([p.grad.flatten() for p in params])

    g0, g1, g2 = grad(0.0), grad(1.0), grad(2.0)
    assert not torch.allclose(g0, g1)
    # the loss is linear in beta: each unit of beta adds the same prior gradient
    torch.testing.assert_close(g2 - g1, g1 - g0, rtol=1e-4, atol=1e-7)


def test_progress_reports_every_step_with_its_loss(tmp_path, tiny_model_dir, tiny_dataset,
                                                   tiny_class_dir):
    seen: list[Progress] = []
    result = train_dreambooth(tiny_dataset, tiny_class_dir, tmp_path, tiny_config(tiny_model_dir),
                              progress=seen.append)
    assert [(p.stage, p.step, p.total) for p in seen] == [("train", i, 4) for i in range(1, 5)]
    assert [p.loss for p in seen] == result.losses
    assert all(p.extra["prior_loss"] is not None for p in seen)
    assert result.steps == 4 and (result.weights_dir / "pytorch_lora_weights.safetensors").exists()


def test_zero_beta_trains_without_class_images(tmp_path, tiny_model_dir, tiny_dataset):
    seen: list[Progress] = []
    train_dreambooth(tiny_dataset, None, tmp_path, tiny_config(tiny_model_dir, prior_loss_weight=0.0,
                                                               steps=2), progress=seen.append)
    assert [p.extra["prior_loss"] for p in seen] == [None, None]


def test_stop_request_writes_a_checkpoint_and_raises_interrupted(tmp_path, tiny_model_dir, tiny_dataset,
                                                                 tiny_class_dir):
    reported: list[Path] = []
    steps_done: list[int] = []
    with pytest.raises(Interrupted):
        train_dreambooth(tiny_dataset, tiny_class_dir, tmp_path, tiny_config(tiny_model_dir),
                         progress=lambda p: steps_done.append(p.step),
                         should_stop=lambda: len(steps_done) >= 2, on_checkpoint=reported.append)
    assert steps_done == [1, 2]
    assert reported == [tmp_path / "checkpoints" / "step-2"] == [latest_checkpoint(tmp_path)]
    assert not (tmp_path / "weights").exists()


def test_periodic_checkpoints_keep_only_the_newest_and_the_choices_candidates(
        tmp_path, tiny_model_dir, tiny_dataset, tiny_class_dir):
    reported: list[Path] = []
    train_dreambooth(tiny_dataset, tiny_class_dir, tmp_path,
                     tiny_config(tiny_model_dir, steps=8, checkpoint_every=3), on_checkpoint=reported.append)
    # every 3 steps, and at 50% and 75% of 8 (steps 4 and 6: the checkpoint choice's candidates)
    assert [p.name for p in reported] == ["step-3", "step-4", "step-6"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-4", "step-6"]
    for name in ("step-4", "step-6"):  # each carries its LoRA in the generation format
        weights = tmp_path / "checkpoints" / name / "weights"
        assert (weights / "pytorch_lora_weights.safetensors").is_file() and (weights / "train_result.json").is_file()
    assert not (tmp_path / "checkpoints" / "step-3").exists()  # not a candidate: only the newest is kept


def test_dataset_resolution_must_match_the_config(tmp_path, tiny_model_dir, tiny_dataset, tiny_class_dir):
    with pytest.raises(ValueError, match="prepared at"):
        train_dreambooth(tiny_dataset, tiny_class_dir, tmp_path,
                         tiny_config(tiny_model_dir, resolution=2 * TINY_RESOLUTION))

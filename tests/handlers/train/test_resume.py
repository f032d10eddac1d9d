"""Checkpoint and resume: an interrupted run, resumed, ends with the uninterrupted run's weights.

Tolerance: bitwise on CPU (``torch.equal``). Batches, latent samples, noise and timesteps are
pure functions of (seed, step), and a checkpoint holds the fp32 trainable weights, the AdamW
state and the step, so nothing differs. On a GPU, non-deterministic backward kernels make the
two runs agree to float tolerance instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from handlers.errors import Interrupted
from handlers.train.checkpoint import latest_checkpoint
from handlers.train.config import TrainConfig
from handlers.train.dreambooth import train_dreambooth
from tests.fixtures.models import TINY_RESOLUTION

STEPS = 4


def config(model_dir: Path, method: str, **kw) -> TrainConfig:
    base = dict(base_model=str(model_dir), method=method, resolution=TINY_RESOLUTION,
                mixed_precision="no", device="cpu", steps=STEPS, lora_rank=4, checkpoint_every=0,
                learning_rate=1e-2 if method == "lora" else 1e-3, batch_size=1)
    return TrainConfig(**(base | kw))


def weights(result_dir: Path) -> dict:
    lora = result_dir / "weights" / "pytorch_lora_weights.safetensors"
    if lora.exists():
        return load_file(str(lora))
    return load_file(str(result_dir / "weights" / "unet" / "diffusion_pytorch_model.safetensors"))


def assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].equal(b[k]), k


@pytest.fixture(scope="module", params=["lora", "full"])
def uninterrupted(request, tmp_path_factory, tiny_model_dir, tiny_dataset, tiny_class_dir):
    out = tmp_path_factory.mktemp(f"uninterrupted-{request.param}")
    result = train_dreambooth(tiny_dataset, tiny_class_dir, out, config(tiny_model_dir, request.param))
    return request.param, out, result


def test_stop_then_resume_equals_an_uninterrupted_run(uninterrupted, tmp_path, tiny_model_dir,
                                                      tiny_dataset, tiny_class_dir):
    method, ref_dir, ref = uninterrupted
    cfg = config(tiny_model_dir, method)
    done: list[int] = []
    with pytest.raises(Interrupted):
        train_dreambooth(tiny_dataset, tiny_class_dir, tmp_path, cfg, progress=lambda p: done.append(p.step),
                         should_stop=lambda: len(done) == 2)
    checkpoint = latest_checkpoint(tmp_path)
    assert checkpoint is not None and checkpoint.name == "step-2"
    resumed_steps: list[int] = []
    result = train_dreambooth(tiny_dataset, tiny_class_dir, tmp_path, cfg, resume_from=checkpoint,
                              progress=lambda p: resumed_steps.append(p.step))
    assert resumed_steps == [3, 4]
    assert result.losses == ref.losses
    assert_bitwise_equal(weights(tmp_path), weights(ref_dir))


def test_crash_after_a_periodic_checkpoint_resumes_from_it(uninterrupted, tmp_path, tiny_model_dir,
                                                           tiny_dataset, tiny_class_dir):
    method, ref_dir, _ = uninterrupted
    cfg = config(tiny_model_dir, method, checkpoint_every=2)

    def crash_at_step_4(p) -> None:
        if p.step == 4:
            raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError):
        train_dreambooth(tiny_dataset, tiny_class_dir, tmp_path, cfg, progress=crash_at_step_4)
    checkpoint = latest_checkpoint(tmp_path)
    # every 2 steps, plus the checkpoint choice's candidates (50% and 75% of 4: steps 2 and 3)
    assert checkpoint is not None and checkpoint.name == "step-3"
    train_dreambooth(tiny_dataset, tiny_class_dir, tmp_path, cfg, resume_from=checkpoint)
    assert_bitwise_equal(weights(tmp_path), weights(ref_dir))


def test_a_checkpoint_from_another_setup_is_not_resumed_training_starts_again_with_the_reason(
        uninterrupted, tmp_path, tiny_model_dir, tiny_dataset, tiny_class_dir):
    """A deploy changed the config while a job was in flight: not a crash (it raised on every
    attempt until the job failed), a fresh start on the same data, and the log says why."""
    import structlog.testing

    method, _, _ = uninterrupted
    done: list[int] = []
    with pytest.raises(Interrupted):
        train_dreambooth(tiny_dataset, tiny_class_dir, tmp_path, config(tiny_model_dir, method),
                         progress=lambda p: done.append(p.step), should_stop=lambda: True)
    other = config(tiny_model_dir, method, seed=1)
    steps: list[int] = []
    with structlog.testing.capture_logs() as logs:
        result = train_dreambooth(tiny_dataset, tiny_class_dir, tmp_path / "again", other,
                                  resume_from=latest_checkpoint(tmp_path), progress=lambda p: steps.append(p.step))
    assert steps == list(range(1, STEPS + 1)) and result.steps == STEPS
    [restarted] = [e for e in logs if e["event"] == "train_restarted"]
    assert "seed" in restarted["reason"] and "step 1" in restarted["reason"]

"""Named sets of settings for running the whole service on a laptop CPU with the tiny model.

Why: the demo, the end-to-end tests, the fault suite and the throughput bench all run the real
pipeline on the tiny SDXL-architecture model; they must agree on what "a quick job" is, and
the values belong next to each other, not scattered over four files. Production never uses a
profile: its settings come from the environment alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from processor.settings import Settings


def tiny_model_settings(model_dir: Path, cache_dir: Path, *, num_images: int = 50,
                        train_steps: int = 8) -> dict[str, Any]:
    """Settings overrides for a job on the tiny model (128 px, a few steps, report mode).

    Selection runs in ``report`` mode: a randomly initialised model draws no faces, so
    ``enforce`` would reject everything; ``report`` scores each image and keeps it, and the
    email and status say so.
    """
    return {
        "base_model": str(model_dir),
        "device": "cpu",
        "mixed_precision": "no",
        "train_method": "lora",
        "train_steps": train_steps,
        "train_batch_size": 1,  # the recipe's 4 quadruples a CPU step; the tiny model learns nothing anyway
        "num_class_images": 4,
        "class_cache_dir": cache_dir / "class-images",
        "work_dir": cache_dir / "work",
        "resolution": 128,
        "num_images": num_images,
        "inference_steps": 3,
        "generation_batch_size": 10,
        "max_regenerations": 0,
        "selection_mode": "report",
        "choice_prompts": 1,  # 3 checkpoints x 2 scales x 1 prompt: the choice runs, cheaply
    }


def fast_queue_settings(*, visibility_timeout_s: int = 30, heartbeat_interval_s: float = 5.0,
                        wait_time_s: int = 1, owner_stale_after_s: float = 20.0,
                        shutdown_grace_s: float = 30.0) -> dict[str, Any]:
    """Queue timings for local runs: short polls and heartbeats so tests and demos react fast."""
    return {
        "visibility_timeout_s": visibility_timeout_s,
        "heartbeat_interval_s": heartbeat_interval_s,
        "wait_time_s": wait_time_s,
        "owner_stale_after_s": owner_stale_after_s,
        "shutdown_grace_s": shutdown_grace_s,
    }


#: The timing of today's queue before the lease rule (owner staleness 300 s with visibility
#: 120 s): kept so the fault suite shows the worker copes with it too.
LEGACY_OWNER_STALE_S = 300.0


def production_timing(scale: float = 0.1, *, legacy: bool = False) -> dict[str, Any]:
    """The production defaults' visibility : heartbeat : staleness : receive count, scaled in time.

    Read from :class:`Settings`' own defaults, so the fault suite runs the ratios production
    runs. ``legacy``: the staleness of the settings before the lease rule (longer than the
    visibility timeout), instead of the derived one.
    """
    fields = Settings.model_fields
    visibility = int(round(fields["visibility_timeout_s"].default * scale))
    heartbeat = fields["heartbeat_interval_s"].default * scale
    values: dict[str, Any] = {
        "visibility_timeout_s": visibility,
        "heartbeat_interval_s": heartbeat,
        "max_receive_count": fields["max_receive_count"].default,
        "owner_stale_after_s": LEGACY_OWNER_STALE_S * scale if legacy else None,
        "wait_time_s": 1,
        "shutdown_grace_s": 30.0,
        "dlq_sweep_interval_s": 2.0,
    }
    return values

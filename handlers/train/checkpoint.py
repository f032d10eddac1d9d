"""Training checkpoints: ``out_dir/checkpoints/step-<N>/`` holding what a resume needs.

Why this little: batches, noise and timesteps are pure functions of ``(seed, step)`` (see
``handlers.train.data``), so the exact state of a run is the trainable weights, the optimizer
(and fp16 grad-scaler) state and the step. For LoRA that is a few MB, small enough for the
runtime to upload under ``jobs/<job>/work/train/``; a full fine-tune's checkpoint (weights plus
Adam moments, ~30 GB for SDXL) stays on local disk.

A checkpoint is written into a temporary folder and renamed into place, so a worker killed
mid-write leaves either the previous checkpoint or the new one, never half of one. (In S3 the
runtime's checkpoint protocol gives the same guarantee: ``processor/job/checkpoints.py``.)

A checkpoint resumes only the run that wrote it: its fingerprint (the knobs that shape the
trajectory) must match. One that does not (a deploy changed the training config while the job
was in flight) is not an error: training starts again from step 0 on the same prepared data,
and :func:`resume_refusal` says why, for the log.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

CHECKPOINTS = "checkpoints"
_WEIGHTS = "trainable.safetensors"
_OPTIMIZER = "optimizer.pt"
_STATE = "state.json"


@dataclass(frozen=True)
class Checkpoint:
    step: int
    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scaler: dict[str, Any] | None
    fingerprint: dict[str, Any]
    losses: list[float]


def checkpoint_dir(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / CHECKPOINTS / f"step-{step}"


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The highest-step complete checkpoint under ``out_dir``, if any."""
    root = Path(out_dir) / CHECKPOINTS
    if not root.is_dir():
        return None
    found = [(int(p.name.split("-", 1)[1]), p) for p in root.iterdir()
             if p.is_dir() and p.name.startswith("step-") and (p / _STATE).exists()]
    return max(found)[1] if found else None


#: Where a candidate checkpoint keeps its weights in the generation format (LoRA runs).
CANDIDATE_WEIGHTS = "weights"


def candidate_steps(total: int) -> tuple[int, ...]:
    """The steps whose checkpoints are kept as candidates of the checkpoint choice besides the
    last one: 50% and 75% of the run (``handlers/choose.py``; docs/judge.md)."""
    return tuple(sorted({s for s in (total // 2, (3 * total) // 4) if 0 < s < total}))


def save_checkpoint(out_dir: Path, step: int, weights: dict[str, torch.Tensor],
                    optimizer: dict[str, Any], scaler: dict[str, Any] | None,
                    fingerprint: dict[str, Any], losses: list[float], keep: int = 1,
                    pinned: tuple[int, ...] = (), extra: Callable[[Path], None] | None = None) -> Path:
    """Write checkpoint ``step`` atomically and delete all but the newest ``keep`` (the
    ``pinned`` steps, the checkpoint choice's candidates, are kept too). ``extra(folder)``
    writes more files into the checkpoint before it appears (a candidate's weights)."""
    final = checkpoint_dir(out_dir, step)
    tmp = final.with_name(final.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(tmp / _WEIGHTS))
    torch.save({"optimizer": optimizer, "scaler": scaler}, tmp / _OPTIMIZER)
    if extra is not None:
        extra(tmp)
    (tmp / _STATE).write_text(json.dumps({"step": step, "fingerprint": fingerprint,
                                          "losses": losses}), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    older = sorted((int(p.name.split("-", 1)[1]), p) for p in final.parent.iterdir()
                   if p.is_dir() and p.name.startswith("step-") and not p.name.endswith(".partial"))
    for step_n, path in older[:-keep] if keep > 0 else []:
        if step_n not in pinned:
            shutil.rmtree(path, ignore_errors=True)
    return final


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> Checkpoint:
    path = Path(path)
    state = json.loads((path / _STATE).read_text(encoding="utf-8"))
    blob = torch.load(path / _OPTIMIZER, map_location=map_location, weights_only=True)
    return Checkpoint(step=int(state["step"]), weights=load_file(str(path / _WEIGHTS)),
                      optimizer=blob["optimizer"], scaler=blob["scaler"],
                      fingerprint=state["fingerprint"], losses=list(state.get("losses", [])))


def resume_refusal(checkpoint: Checkpoint, fingerprint: dict[str, Any]) -> str | None:
    """Why ``checkpoint`` cannot resume a run with ``fingerprint`` (None: it can)."""
    if checkpoint.fingerprint == fingerprint:
        return None
    changed = sorted(k for k in set(checkpoint.fingerprint) | set(fingerprint)
                     if checkpoint.fingerprint.get(k) != fingerprint.get(k))
    return f"the training setup changed since step {checkpoint.step} ({', '.join(changed)})"

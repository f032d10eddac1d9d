"""The stage template: each stage is declared once, and one driver runs any of them.

Why: every stage follows the same rule (skip it if a done record exists, else show its state,
run it, checkpoint its result, record its timing, mark it done), and that rule used to be
written five times. A :class:`Stage` says only what differs: its name, the job state it
shows, what it does with its inputs (one call into :mod:`processor.stages`, plus the
uploads and downloads around it) and how its result is written into and read back from its
done record. :func:`drive` does the rest, the same way for every stage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from processor.job.attempt import Attempt
from processor.job.checkpoints import Checkpoint
from processor.job.state import JobState

E = TypeVar("E")  # what the stages share (the pipeline's Env)
In = TypeVar("In")
Out = TypeVar("Out")

Hit = Callable[[str], None]


def _no_fields(value: Any) -> dict[str, Any] | None:
    return None


def _no_files(value: Any) -> Mapping[str, Path]:
    return {}


@dataclass(frozen=True)
class Stage(Generic[E, In, Out]):
    """One pipeline stage, declared once.

    ``run(env, job, inputs)`` does the work and writes its partial checkpoints; ``record(out)``
    is the done record's meta (JSON) and ``files(out)`` its files (the stage's outputs), both
    written as the stage's ``done`` checkpoint (:mod:`processor.job.checkpoints`);
    ``restore(env, job, done, inputs)`` rebuilds the result from that checkpoint on a later
    attempt, or returns None when the stage must run again (e.g. its output lived on a disk
    that is gone); ``status_fields(out)`` are set on status.json as the stage finishes.
    """

    name: str
    state: JobState
    run: Callable[[E, Attempt, In], Awaitable[Out]]
    record: Callable[[Out], dict[str, Any]]
    restore: Callable[[E, Attempt, Checkpoint, In], Awaitable[Out | None]]
    status_fields: Callable[[Out], dict[str, Any] | None] = _no_fields
    files: Callable[[Out], Mapping[str, Path]] = _no_files


async def enter(job: Attempt, stage: str, state: JobState, hit: Hit) -> None:
    """A stage starts: a stop asked between stages wins, then status.json shows it running."""
    job.check_stop()
    hit(f"{stage}.start")
    await job.status.enter(stage, state)


async def drive(stage: Stage[E, In, Out], env: E, job: Attempt, inputs: In, hit: Hit) -> Out:
    """Skip, or run and checkpoint, one stage for one attempt."""
    done = await job.ckpt.done(stage.name)
    if done is not None:
        restored = await stage.restore(env, job, done, inputs)
        if restored is not None:
            job.log.info("stage_skipped", stage=stage.name, epoch=done.epoch)
            return restored
    await enter(job, stage.name, stage.state, hit)
    value = await stage.run(env, job, inputs)
    await job.ckpt.mark_done(stage.name, stage.record(value), stage.files(value))
    await job.status.leave(stage.name, stage.status_fields(value))
    return value

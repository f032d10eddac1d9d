"""One attempt at a job: what the worker hands the pipeline, and what the stages share while it runs.

A job may take several attempts (a crash, a hand-back on SIGTERM, a lost lease); each starts
from the checkpoints in S3, never from what a dead attempt left on local disk.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from processor import clock
from processor.aws.storage import ObjectStore
from processor.job.checkpoints import JobCheckpoints
from processor.job.fence import Fence
from processor.job.status_writer import StatusWriter
from processor.job.store import JobStore
from processor.manifest import Manifest
from processor.stages import Interrupted


class JobResult(StrEnum):
    """How an attempt ended, as the worker needs to know it to settle the message."""

    TERMINAL = "terminal"        # delivered, rejected or failed: delete the message
    INTERRUPTED = "interrupted"  # stop asked; checkpoints written: hand the message back
    LOST = "lost"                # another worker owns the job now: leave everything to it


@dataclass(frozen=True)
class JobRun:
    """What the worker hands the pipeline for one attempt at a job."""

    job_id: str
    worker_id: str
    attempt: int
    final_attempt: bool
    should_stop: Callable[[], bool]
    fence: Fence | None = None  # the lease's (processor.job.lease); None: one that never expires
    deadline: float | None = None  # wall time past which the job has run too long (max_job_duration_s)

    @property
    def overdue(self) -> bool:
        return self.deadline is not None and clock.now() > self.deadline


@dataclass
class Attempt:
    """The run, its local work folder, fence, checkpoints and status writer, and the manifest."""

    run: JobRun
    root: Path
    fence: Fence
    ckpt: JobCheckpoints
    status: StatusWriter
    log: Any
    manifest: Manifest | None = None

    @classmethod
    def begin(cls, run: JobRun, work_dir: Path, store: ObjectStore, jobs: JobStore, logger: Any,
              hit: Callable[[str], None] | None = None) -> Attempt:
        """``logger``: the caller's, so the job's log lines keep naming the module that wrote them;
        ``hit``: the failpoint hook (the checkpoint protocol's points)."""
        jlog = logger.bind(job_id=run.job_id, attempt=run.attempt)
        fence = run.fence or Fence(run.job_id)
        ckpt = JobCheckpoints(store, jobs.bucket, run.job_id, fence, hit) if hit else \
            JobCheckpoints(store, jobs.bucket, run.job_id, fence)
        return cls(run=run, root=work_dir / run.job_id, fence=fence, ckpt=ckpt,
                   status=StatusWriter(jobs, run.job_id, run.worker_id, jlog, fence), log=jlog)

    @property
    def job_id(self) -> str:
        return self.run.job_id

    def dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def check_stop(self) -> None:
        if self.run.should_stop():
            raise Interrupted("stop requested between stages")

    def clear_local(self, keep: tuple[str, ...] = ()) -> None:
        """Empty the work folder but for ``keep`` (a full fine-tune's weights stay on disk)."""
        if self.root.exists():
            for child in self.root.iterdir():
                if child.name in keep:
                    continue
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)

"""One attempt at a job: what the pipeline's stages share while it runs.

A job may take several attempts (a crash, a hand-back on SIGTERM, a lost lease); each starts
from the checkpoints in S3, never from what a dead attempt left on local disk.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handlers.errors import Interrupted
from processor.attempt_status import AttemptStatus
from processor.checkpoints import JobCheckpoints
from processor.job_store import JobStore
from processor.manifest import Manifest
from processor.worker import JobRun


@dataclass
class Attempt:
    """The run, its local work folder, its checkpoints and status writer, and the manifest."""

    run: JobRun
    root: Path
    ckpt: JobCheckpoints
    status: AttemptStatus
    log: Any
    manifest: Manifest | None = None

    @classmethod
    def begin(cls, run: JobRun, work_dir: Path, jobs: JobStore, logger: Any) -> Attempt:
        """``logger``: the caller's, so the job's log lines keep naming the module that wrote them."""
        jlog = logger.bind(job_id=run.job_id, attempt=run.attempt)
        return cls(run=run, root=work_dir / run.job_id, ckpt=JobCheckpoints(jobs, run.job_id),
                   status=AttemptStatus(jobs, run.job_id, run.worker_id, jlog), log=jlog)

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

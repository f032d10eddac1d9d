"""``headshots status JOB``: state, progress and stage timings from status.json."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

from processor.aws.storage import ObjectStore
from processor.commands.status import format_status
from processor.devkit.local_stack import LocalStack
from processor.job.state import JobState, JobStatus, ProgressInfo
from processor.job.store import JobStore
from processor.settings import Settings
from tests.integration.harness import REPO_ROOT


def _training(job_id: str, now: float) -> JobStatus:
    s = JobStatus.new(job_id, now).with_owner("w1", now)
    s = s.transition(JobState.VALIDATING, now).start_stage("validate", now - 9).finish_stage("validate", now - 4)
    s = s.transition(JobState.TRAINING, now).start_stage("train", now - 3)
    return s.with_progress(ProgressInfo(stage="train", step=30, total=120, loss=0.1234), now)


def test_format_shows_state_progress_percentage_loss_and_stage_times() -> None:
    now = time.time()
    text = format_status(_training("job-1", now), now)
    assert "job job-1: training" in text
    assert "train 30/120 25%" in text and "loss 0.1234" in text
    assert "validate: 5.0s" in text and "train: running" in text


def _cli(local_stack: LocalStack, settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **local_stack.settings_env(settings)}
    return subprocess.run([sys.executable, "-m", "processor.cli", "status", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_status_prints_the_job_from_status_json(aws_settings: Settings, local_stack: LocalStack,
                                                job_id: str) -> None:
    async def create() -> None:
        async with ObjectStore(aws_settings) as store:
            await JobStore(store, aws_settings.output_bucket, 60).create(_training(job_id, time.time()))
    asyncio.run(create())
    out = _cli(local_stack, aws_settings, job_id)
    assert out.returncode == 0, out.stderr
    assert f"job {job_id}: training" in out.stdout and "train 30/120" in out.stdout
    out = _cli(local_stack, aws_settings, job_id, "--json")
    assert json.loads(out.stdout)["progress"]["step"] == 30


def test_status_of_an_unknown_job_exits_1_and_a_bad_id_exits_2(aws_settings: Settings,
                                                               local_stack: LocalStack) -> None:
    assert _cli(local_stack, aws_settings, "never-submitted").returncode == 1
    bad = _cli(local_stack, aws_settings, "../etc")
    assert bad.returncode == 2 and "job id" in bad.stderr
